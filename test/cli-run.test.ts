import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { packageRoot } from '../src/eval/paths.js'
import { planEvaluation } from '../src/eval/runner.js'
import { MAIN_LENGTHS, MAIN_POLICIES, MAIN_SAMPLES, MAIN_TASKS } from '../src/eval/main-job.js'
import { defaultModelDir } from '../src/eval/paths.js'

function kvkit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/kvkit.js', ...args], { cwd: packageRoot(), encoding: 'utf8', timeout: 120_000 })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('kvkit eval end to end', () => {
  it('prints the table, progress on stderr, and writes the JSON and the HTML report', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-cli-'))
    const r = kvkit('eval', '--model', 'models/fixture-14m', '--policy', 'full', '--policy', 'streamingllm:budget=0.25',
      '--task', 'passkey', '--length', '512', '--samples', '2', '--seed', '5', '--workers', '1',
      '--json', join(dir, 'out', 'results.json'), '--report', join(dir, 'report'))
    expect(r.code, r.stderr).toBe(0)
    const lines = r.stdout.split('\n')
    expect(lines[0]).toMatch(/^policy\s+task\s+length\s+samples\s+accuracy\s+95% CI\s+score\s+KV kept\s+prefill ms\s+decode ms\/tok\s+kernels$/)
    expect(lines[2]).toMatch(/^full\s+passkey\s+512\s+2\s+\d\.\d\d\s+\d\.\d\d-\d\.\d\d\s+\d\.\d\d\s+[\d.]+ MiB \(100%\)\s+\d+\s+[\d.]+\s+wasm-(relaxed-)?simd$/)
    expect(lines[3]).toMatch(/^streamingllm 25%\s+passkey\s+512\s+2\s/)
    expect(r.stderr).toMatch(/\[1\/4\] full passkey@512/)
    expect(r.stderr).toMatch(/\[4\/4\] streamingllm:budget=0\.25 passkey@512/)
    const json = JSON.parse(readFileSync(join(dir, 'out', 'results.json'), 'utf8'))
    expect(json.results).toHaveLength(2)
    expect(Object.keys(json.results[0])).toEqual(['policy', 'task', 'length', 'samples', 'accuracy', 'accuracyInterval', 'score', 'kvBytes', 'kvBytesFull', 'prefillMs', 'compressMs', 'decodeMsPerToken', 'kernels', 'kvDtype', 'question', 'newTokens'])
    expect(json.results[1].kvBytes).toBeLessThan(json.results[1].kvBytesFull / 2)
    expect(existsSync(join(dir, 'report', 'index.html'))).toBe(true)
  })
})

describe('kvkit generate', () => {
  it('streams the continuation and reports the KV memory used', () => {
    const r = kvkit('generate', '--model', 'models/fixture-14m', '--policy', 'streamingllm:tokens=16',
      '--prompt', 'It is a truth universally acknowledged, that a single man in possession of a good fortune', '--max-new-tokens', '12')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().length).toBeGreaterThan(0)
    expect(r.stderr).toMatch(/^KV cache \(streamingllm:tokens=16\): [\d.]+ KiB \/ [\d.]+ KiB \(\d+%\) of the full cache, .* reserved; \d+ prompt tokens, \d+ new; prefill \d+ ms, decode [\d.]+ ms\/token; wasm-(relaxed-)?simd on \d+ threads?$/m)
  })
})

describe('the main job', () => {
  it('names only valid policies and tasks', () => {
    const { jobs } = planEvaluation({ model: defaultModelDir(), policies: MAIN_POLICIES, tasks: MAIN_TASKS, lengths: MAIN_LENGTHS, samples: MAIN_SAMPLES })
    expect(jobs.length).toBe(MAIN_TASKS.length * MAIN_LENGTHS.length * MAIN_SAMPLES)
    expect(jobs.every((j) => j.policies.length === MAIN_POLICIES.length && j.sharePrefill)).toBe(true)
    expect(MAIN_SAMPLES).toBeGreaterThanOrEqual(8)
    expect(MAIN_POLICIES[0]).toBe('full')
  })
})

describe('kvkit COMMAND --help', () => {
  it.each(['eval', 'generate', 'serve', 'policies'])('%s --help prints the usage on stdout and exits 0, doing nothing else', (command) => {
    const r = kvkit(command, '--help')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^usage:\n {2}kvkit eval --model DIR/)
    expect(r.stderr).toBe('')
  })
  it('an unknown command still exits 2, naming it and the commands', () => {
    const r = kvkit('evaluate', '--help')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/unknown command "evaluate" \(commands: eval, generate, /)
  })
})

/**
 * Kind 10 of issue 8: the command line never loses a run. Every bad argument exits 2 with one line on
 * stderr, before any cell runs or any weight loads (outputs that cannot be written, empty, binary or
 * break-less haystacks, counts of 0, a task too short for a length, an unavailable backend); the JSON
 * results are written as cells finish. Runs the CLI in-process (runCli) so the grid takes seconds.
 */
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'
import { createBackend } from '../src/backend/index.js'

const MODEL = 'models/fixture-14m'
const dir = mkdtempSync(join(tmpdir(), 'kvkit-cli-'))
const file = (name: string, content: string | Buffer) => {
  const p = join(dir, name)
  writeFileSync(p, content)
  return p
}
const empty = file('empty.txt', '')
const binary = file('binary.txt', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256)))
const noBreaks = file('nobreaks.txt', 'word '.repeat(3000))
mkdirSync(join(dir, 'a-dir.json'))

// extra flags replace the base's own: the CLI refuses a single-value option given twice
const evalArgs = (...extra: string[]) => {
  const base = ['--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '1024', '--samples', '1', '--workers', '1']
  for (let i = 0; i < extra.length; i += 2) if (base.includes(extra[i])) base.splice(base.indexOf(extra[i]), 2)
  return ['eval', ...base, ...extra]
}

describe('every bad argument exits 2 before any work', () => {
  it('bad argument x command: exit 2, one line naming it, nothing run', async () => {
    const webgpuMissing = await createBackend('webgpu').then(() => false, () => true)
    const CASES: [string[], RegExp][] = [
      [evalArgs('--json', ''), /--json needs a file name/],
      // a path under a regular file: its folder cannot exist (ENOTDIR), as for any unwritable place
      [evalArgs('--json', join(empty, 'results.json')), /--json .*empty\.txt\/results\.json cannot be written/],
      [evalArgs('--json', join(dir, 'a-dir.json')), /a-dir\.json cannot be written/],
      [evalArgs('--report', join(empty, 'report')), /--report .*empty\.txt\/report cannot be written/],
      [evalArgs('--haystack', empty), /has no text/],
      [evalArgs('--haystack', binary), /is not text/],
      [evalArgs('--haystack', noBreaks), /without a sentence break/],
      [['eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey,kv', '--length', '160', '--samples', '1'], /too short for task kv/],
      [evalArgs('--samples', '0'), /--samples must be at least 1/],
      [evalArgs('--workers', '0'), /--workers must be at least 1/],
      [['generate', '--model', MODEL, '--prompt', 'x', '--max-new-tokens', '0'], /--max-new-tokens must be at least 1/],
      [['perplexity', '--model', MODEL, '--samples', '0', '--length', '256'], /--samples must be at least 1/],
      [['perplexity', '--model', MODEL, '--haystack', empty, '--length', '256'], /has no text/],
      [['perplexity', '--model', MODEL, '--haystack', binary, '--length', '256'], /is not text/],
      [['perplexity', '--model', MODEL, '--length', '1'], /length 1/],
      ...(webgpuMissing ? [[['generate', '--model', MODEL, '--prompt', 'x', '--backend', 'webgpu'], /webgpu is not available/] as [string[], RegExp]] : []),
    ]
    for (const [args, names] of CASES) {
      const r = await cli(...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toMatch(names)
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
      expect(r.stderr, 'no cell ran').not.toMatch(/\[\d+\/\d+\]/)
    }
    expect(CASES.length).toBeGreaterThanOrEqual(15)
  })
})

describe('the JSON results', () => {
  it('hold each cell as soon as it finishes: 0, then 1, then 2 cells', async () => {
    const out = join(dir, 'sub', 'results.json')
    const seen: number[] = []
    const watch = setInterval(() => {
      try {
        const n = (JSON.parse(readFileSync(out, 'utf8')) as { results: unknown[] }).results.length
        if (seen[seen.length - 1] !== n) seen.push(n)
      } catch {
        /* not written yet, or being written */
      }
    }, 1)
    try {
      const r = await cli('eval', '--model', MODEL, '--policy', 'full', '--policy', 'streamingllm', '--task', 'passkey', '--length', '128', '--samples', '1', '--workers', '1', '--json', out)
      expect(r.code, r.stderr).toBe(0)
    } finally {
      clearInterval(watch)
    }
    expect(seen[0]).toBe(0)
    expect(seen).toContain(1)
    expect((JSON.parse(readFileSync(out, 'utf8')) as { results: { policy: string }[] }).results.map((x) => x.policy)).toEqual(['full', 'streamingllm'])
  })
})

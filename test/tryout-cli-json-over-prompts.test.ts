/**
 * `kvkit eval --prompts FILE --json FILE` (the same file, spelt alike or not) exits 2 before any work
 * and leaves the samples as they were. The run started, and the first finished cell's results replaced
 * the JSONL it was reading.
 */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('eval --json over its own --prompts file', () => {
  it('exit 2 naming both; the samples untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-json-prompts-'))
    const prompts = join(dir, 'samples.jsonl')
    const made = await cli('prompts', '--model', 'models/fixture-14m', '--task', 'passkey', '--length', '512', '--samples', '1', '--out', prompts)
    expect(made.code).toBe(0)
    const before = readFileSync(prompts, 'utf8')
    for (const json of [prompts, relative(process.cwd(), prompts)]) {
      const r = await cli('eval', '--model', 'models/fixture-14m', '--policy', 'full', '--workers', '1', '--backend', 'wasm', '--prompts', prompts, '--json', json)
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`kvkit: --json ${json} is the --prompts file: the results would overwrite the samples\n`)
      expect(readFileSync(prompts, 'utf8')).toBe(before)
    }
  })
})

/**
 * `kvkit prompts --out` that cannot be written (a folder, an empty name, a path under a regular file)
 * exits 2 with one line naming it, before the model loads, as eval's --json does. It built every sample
 * first and then failed with exit 1 and Node's raw error (EISDIR: illegal operation on a directory).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-prompts-out-'))
const aFile = join(dir, 'a-file.txt')
writeFileSync(aFile, 'x')
const args = (out: string) => ['prompts', '--model', 'models/fixture-14m', '--task', 'passkey', '--length', '256', '--samples', '1', '--out', out]

describe('kvkit prompts --out', () => {
  it('a folder, an empty name, a path under a file: exit 2, one line, nothing written', async () => {
    for (const [out, msg] of [[dir, /--out .* cannot be written: it exists and is not a regular file/], ['', /--out needs a file name/], [join(aFile, 'p.jsonl'), /--out .*a-file\.txt\/p\.jsonl cannot be written/]] as const) {
      const r = await cli(...args(out))
      expect(r.code, out).toBe(2)
      expect(r.stderr, out).toMatch(msg)
      expect(r.stderr.trim().split('\n'), out).toHaveLength(1)
      expect(r.stdout, out).toBe('')
    }
  })

  it('a writable path in a new folder gets the samples', async () => {
    const out = join(dir, 'sub', 'p.jsonl')
    const r = await cli(...args(out))
    expect(r.code).toBe(0)
    const lines = readFileSync(out, 'utf8').trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0])).toMatchObject({ task: 'passkey', length: 256, index: 0 })
  }, 60_000)
})

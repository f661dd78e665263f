import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// A policy file (UnionKV's or TRIM-KV's gatesFile, NOSA's scoresFile) outside Deno's --allow-read: the
// reader's existence check threw Deno's NotCapable error past its own handling, and createPolicy wrapped
// it as a PolicyOptionValueError ("unionkv: Requires read access ..."), where a file that cannot be read
// is a PolicyFileError naming the file, as RazorAttention's calibrationFile already was.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./tryout-runtimes-deno-policy-file-permission.mjs', import.meta.url))
const deno = `${root}node_modules/.bin/deno`

describe('a policy file outside Deno\'s read permission', () => {
  it('is a PolicyFileError naming the file and the refused access', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-tryout-deno-gates-'))
    const gates = join(dir, 'gates.safetensors')
    const scores = join(dir, 'scores.safetensors')
    copyFileSync(`${root}models/fixture-14m-trimkv/gates-M512.safetensors`, gates)
    copyFileSync(`${root}models/fixture-14m-nosa/scores.safetensors`, scores)
    const out = execFileSync(deno, ['run', `--allow-read=${root}`, '--no-prompt', script, gates, scores], {
      cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' },
    })
    const rows = out.trim().split('\n').map((l) => JSON.parse(l) as { spec: string; fileError?: boolean; message?: string })
    expect(rows).toHaveLength(3)
    for (const r of rows) {
      expect(r.fileError, r.spec).toBe(true)
      expect(r.message, r.spec).toContain(r.spec.includes('nosa') ? scores : gates)
      expect(r.message, r.spec).toMatch(/read access/)
    }
  })
})

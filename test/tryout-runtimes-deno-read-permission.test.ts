import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// Deno refuses a stat outside --allow-read with NotCapable. kvkit/node reported that as "model folder not
// found", sending the user to check a path that exists; the error must say access was refused.
const root = fileURLToPath(new URL('..', import.meta.url))
const script = fileURLToPath(new URL('./tryout-runtimes-deno-read-permission.mjs', import.meta.url))
const deno = `${root}node_modules/.bin/deno`

function run(allowRead: string, folder: string): { name?: string; message?: string; loaded?: boolean } {
  const out = execFileSync(deno, ['run', `--allow-read=${allowRead}`, '--no-prompt', script, folder], {
    cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' },
  })
  return JSON.parse(out.trim().split('\n').pop()!)
}

describe('kvkit/node under Deno without read access to the model folder', () => {
  it('names the folder and the refused access, not "not found"', () => {
    const folder = `${root}models/fixture-14m`
    const r = run(`${root}dist,${root}build,${root}node_modules`, folder)
    expect(r.name).toBe('ModelLoadError')
    expect(r.message).not.toContain('not found')
    expect(r.message).toContain(folder)
    expect(r.message).toMatch(/read access/)
  })

  it('still says "not found" for a folder that is absent, with access granted', () => {
    const r = run(root, `${root}models/no-such-model`)
    expect(r).toEqual({ name: 'ModelLoadError', message: `model folder not found: ${root}models/no-such-model` })
  })
})

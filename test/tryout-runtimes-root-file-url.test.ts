import { execFileSync } from 'node:child_process'
import { mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'
import { beforeAll, describe, expect, it } from 'vitest'

// The root entry fetches a file: URL. Bun's fetch answers a missing file with 200 and fails the body
// with a bare `Error: ENOENT` (not a ModelLoadError); Deno's rejects, Node's cannot fetch file: at all
// ("fetch failed"). A folder without generation_config.json therefore failed untyped (Bun) or with no
// way forward; every runtime must give a ModelLoadError naming the file and pointing to kvkit/node.
const script = fileURLToPath(new URL('./tryout-runtimes-root-file-url.mjs', import.meta.url))
const runtimes = runtimeCommands(script, ['--allow-read', '--allow-env'])

let folder: string
beforeAll(() => {
  // the fixture without its optional generation_config.json and tokenizer_config.json
  folder = mkdtempSync(join(tmpdir(), 'kvkit-file-url-'))
  for (const f of ['config.json', 'tokenizer.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
    symlinkSync(join(root, 'models/fixture-14m', f), join(folder, f))
})

describe("the root entry's loadModel with a file: URL under Node, Bun and Deno", () => {
  it.each(runtimes)('%s: a failed file read is a ModelLoadError naming the file and kvkit/node', (name, bin, args) => {
    const url = pathToFileURL(folder + '/').href
    const out = execFileSync(bin, [...args, url], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
    const r = JSON.parse(out.trim().split('\n').pop()!)
    expect(r.runtime).toBe(name)
    expect(r.name).toBe('ModelLoadError')
    expect(r.message).toMatch(new RegExp(`^cannot fetch ${url}\\w+\\.json: `))
    expect(r.message).toContain("use loadModel from 'kvkit/node'")
  }, 70_000)
})

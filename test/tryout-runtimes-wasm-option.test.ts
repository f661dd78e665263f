import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'
import { describe, expect, it } from 'vitest'

// loadModel's `wasm` option was not checked: a number was read as a relative URL (Node, Bun: "cannot
// read .../wasm/42") or never read where the relaxed build had been chosen (Deno: loaded), and a
// misspelt key was ignored. Each runtime must refuse the same call with an error naming the value.
const script = fileURLToPath(new URL('./tryout-runtimes-wasm-option.mjs', import.meta.url))
const runtimes = runtimeCommands(script, ['--allow-read', '--allow-env'])

describe('loadModel checks its wasm option alike under Node, Bun and Deno', () => {
  it.each(runtimes)('%s refuses bad wasm options with a ModelInputError naming the value', (name, bin, args) => {
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } })
    const r = JSON.parse(out.trim().split('\n').pop()!)
    expect(r.runtime).toBe(name)
    expect(r.number).toEqual({ name: 'ModelInputError', message: 'loadModel: wasm: wasm must be a URL, a path string, bytes or a WebAssembly.Module, got number 42' })
    expect(r.misspelt).toEqual({ name: 'ModelInputError', message: 'loadModel: wasm: unknown option "wsm"; options: wasm, relaxedWasm, threadsWasm, relaxedThreadsWasm, relaxed, heap' })
    expect(r.relaxed).toEqual({ name: 'ModelInputError', message: `loadModel: wasm: relaxed must be true, false or 'auto', got "yes"` })
    expect(r.notObject).toEqual({ name: 'ModelInputError', message: 'loadModel: wasm: must be an object ({ wasm, relaxedWasm, threadsWasm, relaxedThreadsWasm, relaxed, heap }), got "build/kvkit.wasm"' })
  }, 100_000)
})

import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'

// Bytes given as a wasm build that do not compile surfaced as the engine's own CompileError, worded
// per runtime and naming neither the build nor the bytes; each runtime must give one WasmLoadError.
const script = fileURLToPath(new URL('./tryout-runtimes-wasm-bytes.mjs', import.meta.url))

describe('loadModel with wasm bytes that do not compile under Node, Bun and Deno', () => {
  it.each(runtimeCommands(script, ['--allow-read', '--allow-env']))('%s: a WasmLoadError naming the build and the bytes', (name, bin, args) => {
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
    const r = JSON.parse(out.trim().split('\n').pop()!)
    expect(r.runtime).toBe(name)
    expect(r.name).toBe('WasmLoadError')
    expect(r.message).toMatch(/^kvkit\.wasm \(the 3 bytes given\) is not a valid WebAssembly module: /)
  }, 70_000)
})

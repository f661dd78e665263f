import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { runtimeCommands, repoRoot as root } from './runtime-commands.js'
import { describe, expect, it } from 'vitest'

// A build for the other kind of memory failed in WebAssembly.instantiate with the engine's own LinkError,
// worded per engine (JavaScriptCore: "provided a 'shared' that is different from the module's declared
// 'shared' import memory attribute"; V8: "mismatch in shared state of memory, declared = 1, imported = 0")
// and naming neither the option nor the build to pass. Node runs the same checks in
// test/wasm-load-bad-source.test.ts; here Bun and Deno, whose global Worker takes the threads.
const script = fileURLToPath(new URL('./tryout-runtimes-wrong-memory.mjs', import.meta.url))
const runtimes = runtimeCommands(script, ['--allow-read']).filter(([name]) => name !== 'node')

describe('a wasm build for the wrong memory under Bun and Deno', () => {
  it.each(runtimes)('%s refuses it with a WasmLoadError naming the option and the memory it needs', (name, bin, args) => {
    const out = execFileSync(bin, args, { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
    const r = JSON.parse(out.trim().split('\n').pop()!)
    expect(r.runtime).toBe(name)
    const refused = (k: string, prefix: string) => {
      expect(r[k].name, `${k}: ${JSON.stringify(r[k])}`).toBe('WasmLoadError')
      expect(r[k].message.startsWith(prefix), `${k}: ${r[k].message}`).toBe(true)
    }
    refused('threadsOnOne', 'loadWasm: wasm (the WebAssembly.Module given) does not link to an unshared memory (one thread: pass kvkit.wasm, not a threads build): ')
    refused('plainOnTwo', 'loadWasm: threadsWasm (the WebAssembly.Module given) does not link to a shared memory (worker threads: pass the threads build, kvkit.threads.wasm): ')
    refused('relaxedThreadsOnOne', 'loadWasm: relaxedWasm (the WebAssembly.Module given) does not link to an unshared memory (one thread: pass kvkit.relaxed.wasm, not a threads build): ')
    refused('wasi', 'loadWasm: wasm (the WebAssembly.Module given) is not a kvkit build for JavaScript: it imports wasi_snapshot_preview1.proc_exit (function)')
  }, 70_000)
})

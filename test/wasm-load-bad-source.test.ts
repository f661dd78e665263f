import { readFile } from 'node:fs/promises'
import v8 from 'node:v8'
import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { loadWasm, supportsRelaxedSimd, WasmLoadError } from '../src/backend/wasm/load.js'

// createBackend and loadWasm (public: the root entry exports both) took their WasmLoadOptions unchecked,
// where loadModel checks them: `relaxed: 'yes'` loaded the plain build silently, `wasm: 42` was read as a
// file named 42 beside the loader, and a build for the other kind of memory (a threads build on one
// thread, a plain one for worker threads) or the WASI build failed in WebAssembly.instantiate with the
// engine's own LinkError or TypeError, naming neither the option nor the memory it needed.
const build = (f: string) => new URL(`../build/${f}`, import.meta.url)
const compile = async (f: string) => WebAssembly.compile(await readFile(build(f)))

async function refusal(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => undefined, (err: Error) => err)
  expect(e, 'it loaded').toBeInstanceOf(WasmLoadError)
  return e as Error
}

describe('loadWasm and createBackend check the sources and the relaxed choice they are given', () => {
  it("refuse a relaxed other than true, false or 'auto', naming it", async () => {
    expect((await refusal(createBackend('wasm', { relaxed: 'yes' as never }))).message).toBe(`loadWasm: relaxed must be true, false or 'auto', got "yes"`)
    expect((await refusal(loadWasm({ relaxed: 1 as never }))).message).toBe(`loadWasm: relaxed must be true, false or 'auto', got number 1`)
  })

  it('refuse a source that is no URL, path, bytes or Module before reading any file', async () => {
    expect((await refusal(createBackend('wasm', { wasm: 42 as never, relaxed: false }))).message).toBe('loadWasm: wasm must be a URL, a path string, bytes or a WebAssembly.Module, got number 42')
    // where the relaxed build is chosen the plain source was never read: refused all the same
    expect((await refusal(loadWasm({ threadsWasm: {} as never, relaxed: true }, true))).message).toBe('loadWasm: threadsWasm must be a URL, a path string, bytes or a WebAssembly.Module, got Object')
  })

  it('a threads build given for one thread is a WasmLoadError naming the option and the memory it needs', async () => {
    const threads = await compile('kvkit.threads.wasm')
    const e = await refusal(loadWasm({ wasm: threads, relaxed: false }))
    expect(e.message).toMatch(/^loadWasm: wasm \(the WebAssembly\.Module given\) does not link to an unshared memory \(one thread: pass kvkit\.wasm, not a threads build\): /)
    const bytes = await readFile(build('kvkit.threads.wasm'))
    expect((await refusal(loadWasm({ wasm: bytes, relaxed: false }))).message).toContain(`wasm (the ${bytes.byteLength} bytes given) does not link to an unshared memory`)
  })

  it('a plain build given for worker threads is a WasmLoadError naming threadsWasm and the shared memory', async () => {
    const e = await refusal(loadWasm({ threadsWasm: build('kvkit.wasm'), relaxed: false }, true))
    expect(e.message).toMatch(/^loadWasm: threadsWasm \(file:\/\/\S+\/build\/kvkit\.wasm\) does not link to a shared memory \(worker threads: pass the threads build, kvkit\.threads\.wasm\): /)
  })

  it('the WASI build given as wasm is refused by its WASI import', async () => {
    const e = await refusal(loadWasm({ wasm: await compile('kvkit.wasi.wasm'), relaxed: false }))
    expect(e.message).toBe("loadWasm: wasm (the WebAssembly.Module given) is not a kvkit build for JavaScript: it imports wasi_snapshot_preview1.proc_exit (function) (kvkit's builds import env.memory and nothing else; build/kvkit.wasi.wasm is for WASI hosts, docs/abi.md)")
  })

  it("relaxed 'auto' over given builds that do not link here names the plain one, and measures again next time", async () => {
    // Node 20: relaxed SIMD behind a flag read at compile time
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
    expect(supportsRelaxedSimd()).toBe(true)
    const [threads, relaxedThreads] = await Promise.all([compile('kvkit.threads.wasm'), compile('kvkit.relaxed-threads.wasm')])
    // before: the measurement instantiated them on an unshared memory and threw the engine's LinkError
    const e = await refusal(loadWasm({ wasm: threads, relaxedWasm: relaxedThreads }))
    expect(e.message).toContain('loadWasm: wasm (the WebAssembly.Module given) does not link to an unshared memory')
    // the failed measurement is not kept: the default builds load (whichever measures faster)
    const ok = await loadWasm({})
    expect(['simd', 'relaxed']).toContain(ok.build)
  })
})

describe('a relative path string', () => {
  it("that reads nothing says it resolves against kvkit's loader, not the working directory", async () => {
    const e = await refusal(loadWasm({ wasm: 'build/kvkit.wasm', relaxed: false }))
    expect(e.message).toMatch(/^cannot read file:\/\/\S+\/src\/backend\/wasm\/build\/kvkit\.wasm \(the relative path "build\/kvkit\.wasm" resolves against kvkit's loader, file:\/\/\S+\/load\.ts: pass an absolute path or URL\): /)
    // an absolute path is no URL either, and reads
    expect((await loadWasm({ wasm: build('kvkit.wasm').pathname, relaxed: false })).build).toBe('simd')
  })
})

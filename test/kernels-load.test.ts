import { createServer } from 'node:http'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Heap } from '../src/backend/heap.js'
import v8 from 'node:v8'
import { loadWasm, supportsRelaxedSimd, supportsSimd, WasmLoadError } from '../src/backend/wasm/load.js'

const wasmUrl = new URL('../build/kvkit.wasm', import.meta.url)

describe('loading the wasm core', () => {
  it('detects SIMD, and createBackend("auto") picks wasm where it is present', async () => {
    expect(supportsSimd()).toBe(true)
    const b = await createBackend('auto')
    expect(b.name).toBe('wasm')
    expect(b.heap.base).toBeGreaterThanOrEqual(1 << 16)
  })

  it('fetches the module over HTTP, as browsers and workers do', async () => {
    const bytes = await readFile(wasmUrl)
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/wasm' })
      res.end(bytes)
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const port = (server.address() as AddressInfo).port
      const { exports, heap, build } = await loadWasm({ wasm: `http://127.0.0.1:${port}/kvkit.wasm`, relaxed: false })
      expect(build).toBe('simd')
      const x = heap.f32From([1, 5, 3])
      expect(exports.logSumExp(x.ptr, 3)).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)), 5)
    } finally {
      server.close()
    }
  })

  it('accepts a compiled WebAssembly.Module and raw bytes', async () => {
    const bytes = await readFile(wasmUrl)
    for (const wasm of [await WebAssembly.compile(bytes), bytes]) {
      const b = await createBackend('wasm', { wasm, relaxed: false })
      const x = b.heap.f32From([0, 0])
      expect(b.logSumExp(x.ptr, 2)).toBeCloseTo(Math.LN2, 6)
    }
  })

  it("relaxed 'auto' loads a plain build the caller gave without its relaxed counterpart, shared or not", async () => {
    const plain = await WebAssembly.compile(await readFile(wasmUrl))
    const threads = await WebAssembly.compile(await readFile(new URL('../build/kvkit.threads.wasm', import.meta.url)))
    // where relaxed SIMD runs (Node 20: behind a flag, read at compile time), 'auto' measures the two
    // default builds and keeps the relaxed one where it runs faster: never in place of a given plain build
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
    expect(supportsRelaxedSimd()).toBe(true)
    for (const [opts, shared] of [[{ wasm: plain }, false], [{ threadsWasm: threads }, true], [{ wasm: plain, relaxed: 'auto' as const }, false]] as const) {
      const { build, module } = await loadWasm(opts, shared)
      expect(build, JSON.stringify(Object.keys(opts))).toBe('simd')
      expect(module, JSON.stringify(Object.keys(opts))).toBe(shared ? threads : plain)
    }
    // relaxed: true still asks for the relaxed build wherever it runs
    if (supportsRelaxedSimd()) expect((await loadWasm({ wasm: plain, relaxed: true })).build).toBe('relaxed')
  })

  it('refuses a build given for the other kind (plain for relaxed, or relaxed for plain), naming the option and the build it is, before it touches a given arena: the build reported is the one that runs', async () => {
    // Node 20 keeps relaxed SIMD behind a flag, read at compile time
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
    expect(supportsRelaxedSimd()).toBe(true)
    const file = async (name: string) => WebAssembly.compile(await readFile(new URL(`../build/${name}`, import.meta.url)))
    const [plain, relaxed, plainThreads] = await Promise.all(['kvkit.wasm', 'kvkit.relaxed.wasm', 'kvkit.threads.wasm'].map(file))
    await expect(loadWasm({ relaxedWasm: plain, relaxed: true })).rejects.toThrow(/relaxedWasm \(the WebAssembly\.Module given\) is the plain SIMD build, where relaxed: true asks for the relaxed-SIMD one: pass it as wasm/)
    await expect(loadWasm({ wasm: relaxed, relaxed: false })).rejects.toThrow(/wasm \(the WebAssembly\.Module given\) is the relaxed-SIMD build, where relaxed: false asks for the plain SIMD one: pass it as relaxedWasm/)
    await expect(loadWasm({ relaxedThreadsWasm: plainThreads, relaxed: true }, true)).rejects.toThrow(WasmLoadError)
    // an arena that serves the relaxed build keeps its static data when a plain module comes as relaxedWasm
    const served = await loadWasm({ relaxed: true })
    const statics = served.heap.memory.buffer.slice(0, served.heap.base)
    await expect(loadWasm({ heap: served.heap, relaxed: true, relaxedWasm: plain })).rejects.toThrow(/is the plain SIMD build/)
    expect(new Uint8Array(served.heap.memory.buffer, 0, served.heap.base)).toEqual(new Uint8Array(statics))
    // each build given for its own kind loads and says so
    expect((await loadWasm({ relaxedWasm: relaxed, relaxed: true })).build).toBe('relaxed')
    expect((await loadWasm({ wasm: plain, relaxed: false })).build).toBe('simd')
    expect((await loadWasm({ heap: served.heap, relaxed: true, relaxedWasm: relaxed })).build).toBe('relaxed')
  })

  it('refuses a heap whose base lies inside the module static data', async () => {
    const heap = new Heap(undefined, 64)
    await expect(loadWasm({ heap, relaxed: false })).rejects.toThrow(WasmLoadError)
    await expect(loadWasm({ heap, relaxed: false })).rejects.toThrow(/inside the module's static data/)
  })

  it('names the file and the fix when the module cannot be found', async () => {
    await expect(loadWasm({ wasm: new URL('./no-such.wasm', import.meta.url), relaxed: false })).rejects.toThrow(/cannot read .*no-such\.wasm/)
  })

  it('names the bad backend', async () => {
    await expect(createBackend('cuda' as 'wasm')).rejects.toThrow(/unknown backend "cuda"/)
  })
})

describe('sharing a heap between wasm instances', () => {
  it('allows a second instance of the same build and refuses the other build', async () => {
    // Node 20 keeps relaxed SIMD behind a flag; wasm features are read at compile time, so set it here
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
    expect(supportsRelaxedSimd()).toBe(true)
    const first = await loadWasm({ relaxed: false })
    const again = await loadWasm({ relaxed: false, heap: first.heap })
    expect(again.build).toBe('simd')
    await expect(loadWasm({ relaxed: true, heap: first.heap })).rejects.toThrow(/already serves the simd build/)
    const relaxed = await loadWasm({ relaxed: true })
    expect(relaxed.build).toBe('relaxed')
    await expect(loadWasm({ relaxed: false, heap: relaxed.heap })).rejects.toThrow(/already serves the relaxed build/)
  })
})

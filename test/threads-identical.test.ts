import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { attendScratchFloats } from '../src/backend/model-kernels.js'
import { splitRange } from '../src/backend/threads/kernels.js'
import { sharedMemorySupported } from '../src/backend/threads/spawn.js'
import { ThreadPoolError } from '../src/backend/threads/pool.js'
import { ModelInputError } from '../src/model/errors.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { nodeThreads, nodeWorkerSpawner } from '../src/node/threads.js'

// The kernels split across worker threads give the one-thread results bit for bit (each output value is
// computed by the same instructions whichever thread holds it), from the kernels up to generated tokens.

const MODEL = 'models/fixture-14m'

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length)
  return x.every((v, i) => v === y[i])
}

/** deterministic values in [-scale, scale) */
function values(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return ((s / 2 ** 32) * 2 - 1) * scale
  })
}

describe('splitRange', () => {
  it.each([
    [1, 4, 1], [7, 2, 1], [7, 3, 4], [128, 16, 1], [1030, 3, 4], [4096, 16, 4], [3, 8, 1], [384, 5, 4],
  ])('cuts %i into at most %i contiguous pieces of multiples of %i', (count, parts, unit) => {
    const r = splitRange(count, parts, unit)
    expect(r.length).toBeGreaterThanOrEqual(1)
    expect(r.length).toBeLessThanOrEqual(parts)
    expect(r[0][0]).toBe(0)
    expect(r[r.length - 1][1]).toBe(count)
    r.forEach(([from, to], i) => {
      expect(to).toBeGreaterThan(from)
      if (i > 0) expect(from).toBe(r[i - 1][1])
      if (i < r.length - 1) expect(to % unit).toBe(0)
    })
  })
})

describe('threaded kernels equal one thread bit for bit', () => {
  let one: CreatedBackend
  const pools: CreatedBackend[] = []
  beforeAll(async () => {
    one = await createBackend('wasm', { relaxed: false })
    for (const threads of [2, 3]) pools.push(await createBackend('wasm', { relaxed: false, threads, spawnWorker: nodeWorkerSpawner }))
  })
  afterAll(() => pools.forEach((b) => b.close?.()))

  it('the pool runs on a shared arena with the threads asked for', () => {
    expect(pools.map((b) => b.threads)).toEqual([2, 3])
    for (const b of pools) expect(b.heap.memory.buffer).toBeInstanceOf(SharedArrayBuffer)
    expect(one.heap.memory.buffer).not.toBeInstanceOf(SharedArrayBuffer)
  })

  /** runs the same matmul on a backend: inputs written into its own arena, output read back */
  function matmul(b: CreatedBackend, T: number, inDim: number, outDim: number, withBias: boolean): Float32Array {
    const h = b.heap
    const x = h.f32From(values(T * inDim, 1))
    const w = h.f32From(values(outDim * inDim, 2, 0.1))
    const bias = withBias ? h.f32From(values(outDim, 3)) : null
    const y = h.allocF32(T * outDim)
    b.matmul(x.ptr, w.ptr, bias ? bias.ptr : 0, y.ptr, T, inDim, outDim)
    const out = y.view.slice()
    for (const buf of [x, w, y, bias]) buf?.free()
    return out
  }

  // T: decode, the 4-token blocks' tail, a prefill chunk; outDim: odd, tiny, model sizes; inDim: lane tails
  const grid = [1, 5, 128].flatMap((T) => [1, 7, 384, 1030].flatMap((outDim) => [5, 384].map((inDim) => [T, inDim, outDim] as const)))
  it.each(grid)('matmul T %i, %i -> %i, split by output rows', (T, inDim, outDim) => {
    for (const withBias of [false, true]) {
      const want = matmul(one, T, inDim, outDim, withBias)
      for (const b of pools) expect(sameBits(matmul(b, T, inDim, outDim, withBias), want)).toBe(true)
    }
  })

  /** causal attention of T tokens x hq heads over n paged keys (pages of 16), inputs per arena */
  function attend(b: CreatedBackend, T: number, hq: number, n: number, kd: number, vd: number, visible0: number): Float32Array {
    const h = b.heap
    const pt = 16
    const pages = Math.ceil(n / pt)
    const kt = h.allocI32(pages), vt = h.allocI32(pages)
    const bufs = [kt, vt]
    for (let p = 0; p < pages; p++) {
      const k = h.f32From(values(pt * kd, 10 + p)), v = h.f32From(values(pt * vd, 100 + p))
      bufs.push(k, v)
      kt.view[p] = k.ptr
      vt.view[p] = v.ptr
    }
    const q = h.f32From(values(T * hq * kd, 7, 2))
    const out = h.allocF32(T * hq * vd), lse = h.allocF32(T * hq), scratch = h.allocF32(attendScratchFloats(vd, T * hq))
    bufs.push(q, out, lse, scratch)
    b.attendCausal(q.ptr, hq * kd, hq, T, kd, vd, kt.ptr, vt.ptr, pt, n, visible0, 0.125, out.ptr, hq * vd, lse.ptr, scratch.ptr)
    const res = new Float32Array(T * hq * (vd + 1))
    res.set(out.view)
    res.set(lse.view, T * hq * vd)
    for (const x of bufs) x.free()
    return res
  }

  // decode (T 1: split by heads) and chunks (split by tokens); keys fewer than values (channel-pruned);
  // the chunk just appended (visible0 = n - T + 1) and "sees everything" (visible0 = n)
  const attGrid = [
    [1, 3, 1000, 64, 64], [1, 4, 700, 48, 64], [2, 3, 500, 64, 64], [5, 1, 600, 64, 64], [64, 3, 400, 64, 64], [128, 3, 1000, 32, 64], [33, 2, 200, 64, 40],
  ] as const
  it.each(attGrid)('attendCausal T %i x %i heads over %i keys (kd %i, vd %i), split by query rows', (T, hq, n, kd, vd) => {
    for (const visible0 of [n - T + 1, n]) {
      const want = attend(one, T, hq, n, kd, vd, visible0)
      for (const b of pools) expect(sameBits(attend(b, T, hq, n, kd, vd, visible0), want)).toBe(true)
    }
  })

  it('a kernel that traps in a worker is raised as a ThreadPoolError after every part finished, and the pool keeps working', () => {
    const b = pools[0]
    const h = b.heap
    const x = h.f32From(values(384, 1)), w = h.f32From(values(1024 * 384, 2, 0.1))
    // y runs past the end of the memory: the calling thread's rows (the first half) fit, the worker's do not
    const y = h.memory.buffer.byteLength - 600 * 4
    expect(() => b.matmul(x.ptr, w.ptr, 0, y, 1, 384, 1024)).toThrow(ThreadPoolError)
    x.free()
    w.free()
    const want = matmul(one, 128, 384, 384, false)
    expect(sameBits(matmul(b, 128, 384, 384, false), want)).toBe(true)
  })
})

describe('one thread where threads cannot run', () => {
  it('Node through the root entry (no global Worker, no spawnWorker) runs on one thread, unshared', async () => {
    const b = await createBackend('wasm', { relaxed: false, threads: 4 })
    expect(b.threads).toBe(1)
    expect(b.heap.memory.buffer).not.toBeInstanceOf(SharedArrayBuffer)
  })

  it('a page that is not cross-origin isolated has no shared memory, so one thread', async () => {
    const g = globalThis as { crossOriginIsolated?: boolean }
    g.crossOriginIsolated = false
    try {
      expect(sharedMemorySupported()).toBe(false)
      const b = await createBackend('wasm', { relaxed: false, threads: 4, spawnWorker: nodeWorkerSpawner })
      expect(b.threads).toBe(1)
    } finally {
      delete g.crossOriginIsolated
    }
    expect(sharedMemorySupported()).toBe(true)
  })

  /** a runtime whose worker script is missing: every worker reports an error */
  const failingSpawn = () => ({
    postMessage: () => undefined,
    terminate: () => undefined,
    listen: (_m: (x: unknown) => void, onError: (e: Error) => void) => queueMicrotask(() => onError(new Error('worker.js: 404'))),
  })
  it('workers that fail to start reject createBackend naming the cause, or fall back to one thread when threads are optional (loadModel by default)', async () => {
    await expect(createBackend('wasm', { relaxed: false, threads: 3, spawnWorker: failingSpawn })).rejects.toThrow('kernel worker 0: worker.js: 404')
    const b = await createBackend('wasm', { relaxed: false, threads: 3, spawnWorker: failingSpawn, threadsOptional: true })
    expect(b.threads).toBe(1)
    expect(b.close).toBeUndefined()
  })

  it('KVKIT_THREADS sets the Node default, and a bad value is refused naming it', () => {
    const old = process.env.KVKIT_THREADS
    try {
      process.env.KVKIT_THREADS = '3'
      expect(nodeThreads()).toBe(3)
      process.env.KVKIT_THREADS = ''
      expect(nodeThreads()).toBeGreaterThanOrEqual(1)
      for (const bad of ['0', 'two', '1.5']) {
        process.env.KVKIT_THREADS = bad
        expect(() => nodeThreads()).toThrow(`KVKIT_THREADS must be an integer in [1, 256], got "${bad}"`)
      }
    } finally {
      if (old === undefined) delete process.env.KVKIT_THREADS
      else process.env.KVKIT_THREADS = old
    }
  })

  it.each([0, -1, 1.5, Number.NaN, 1000])('loadModel refuses threads = %s before reading any file', async (threads) => {
    await expect(loadModel('/nonexistent-folder', { threads })).rejects.toThrow(ModelInputError)
    await expect(loadModel('/nonexistent-folder', { threads })).rejects.toThrow(`threads must be an integer in [1, 256], got ${threads}`)
  })
})

describe('the fixture model on 2 threads equals 1 thread', () => {
  let m1: LlamaModel
  let m2: LlamaModel
  beforeAll(async () => {
    m1 = await loadModel(MODEL, { threads: 1, wasm: { relaxed: false } })
    m2 = await loadModel(MODEL, { threads: 2, wasm: { relaxed: false } })
  })
  afterAll(() => {
    m1.dispose()
    m2.dispose()
  })

  it('kvkit/node loads with the threads asked for', () => {
    expect(m1.backend.threads).toBe(1)
    expect(m2.backend.threads).toBe(2)
  })

  const prompt = (n: number) => [0, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
  it.each([1, 3, 130, 300])('logits of every position of a %i-token prompt, bit for bit', (n) => {
    expect(sameBits(m2.logits(prompt(n)), m1.logits(prompt(n)))).toBe(true)
  })

  it.each(['full', 'snapkv:budget=0.25', 'h2o:budget=0.25'])('greedy generation with %s gives the same tokens and the same cache decisions', async (policy) => {
    const ids = prompt(200)
    const a = await m1.generate(ids, { maxNewTokens: 12, policy }).result
    const b = await m2.generate(ids, { maxNewTokens: 12, policy }).result
    expect(b.ids).toEqual(a.ids)
    expect(b.text).toBe(a.text)
  })

  it('dispose stops the worker threads: the backend refuses work after', () => {
    const m = m2
    m.dispose()
    expect(() => m.backend.matmul(0, 0, 0, 0, 64, 384, 1024)).toThrow(ThreadPoolError)
  })
})

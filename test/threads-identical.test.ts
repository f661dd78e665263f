import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { attendScratchFloats, matmulAll } from '../src/backend/model-kernels.js'
import { batchTasks, matmulTasks, splitByCost, splitRange } from '../src/backend/threads/kernels.js'
import { JobKind, MAX_SUB, MAX_TASKS } from '../src/backend/threads/protocol.js'
import { sharedMemorySupported } from '../src/backend/threads/spawn.js'
import { ThreadPool, ThreadPoolError } from '../src/backend/threads/pool.js'
import { loadWasm } from '../src/backend/wasm/load.js'
import { ModelInputError } from '../src/model/errors.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { nodeThreads, nodeWorkerSpawner } from '../src/node/threads.js'
import { fixturePrompt, headPages, sameBits, values } from './threads-helpers.js'

// The kernels split across worker threads give the one-thread results bit for bit (each output value is
// computed by the same instructions whichever thread holds it), from the kernels up to generated tokens.

const MODEL = 'models/fixture-14m'

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

describe('splitByCost', () => {
  // uniform, the causal triangle (cost grows with the token), one heavy unit, zeros, fewer units than parts
  const cases: [string, number[], number][] = [
    ['uniform', Array(100).fill(3), 7],
    ['triangle', Array.from({ length: 128 }, (_, t) => 1000 + t), 8],
    ['first chunk triangle', Array.from({ length: 128 }, (_, t) => t + 1), 8],
    ['one heavy unit', [1, 1, 50, 1, 1, 1], 3],
    ['zeros', [0, 0, 5, 0, 5, 0], 2],
    ['fewer units than parts', [4, 4, 4], 8],
  ]
  it.each(cases)('%s: contiguous non-empty pieces covering every unit, each within one unit of the even share', (_, costs, parts) => {
    const r = splitByCost(costs, parts)
    expect(r.length).toBeLessThanOrEqual(Math.min(parts, costs.length))
    expect(r[0][0]).toBe(0)
    expect(r[r.length - 1][1]).toBe(costs.length)
    const total = costs.reduce((a, b) => a + b, 0)
    const maxUnit = Math.max(...costs)
    r.forEach(([from, to], i) => {
      expect(to).toBeGreaterThan(from)
      if (i > 0) expect(from).toBe(r[i - 1][1])
      const cost = costs.slice(from, to).reduce((a, b) => a + b, 0)
      expect(cost).toBeLessThanOrEqual(total / r.length + maxUnit)
    })
  })

  it('cuts the first chunk\'s causal triangle into pieces of fewer late tokens than early ones', () => {
    const r = splitByCost(Array.from({ length: 128 }, (_, t) => t + 1), 4)
    // hand-computed: the prefix sums k(k+1)/2 nearest the targets 2064, 4128, 6192 (of 8256) are
    // 2080 (k 64), 4095 (k 90) and 6216 (k 111)
    expect(r).toEqual([[0, 64], [64, 90], [90, 111], [111, 128]])
  })

  it('matmulTasks: Q, K, V of one decode token (384, 128, 128 rows) in 3 parts of about 213 rows, cut at multiples of 4', () => {
    const call = (w: number, outDim: number) => ({ x: 1, w, bias: 0, y: 10 * w, T: 1, inDim: 384, outDim })
    const tasks = matmulTasks([call(100, 384), call(200, 128), call(300, 128)], 3)
    // cuts at 640/3 = 213.3 rows (q row 212) and 426.7 rows (k row 42.7, so 44)
    expect(tasks.map((t) => t.map((j) => [j.args[1], j.args[7], j.args[8]]))).toEqual([[[100, 0, 212]], [[100, 212, 384], [200, 0, 44]], [[200, 44, 128], [300, 0, 128]]])
    // rows of a T = 4 call cost 4 times those of a T = 1 call: half the cost is 250 rows of the first,
    // 62.5 blocks of 4, rounded to 63
    const mixed = matmulTasks([{ ...call(100, 400), T: 4 }, call(200, 400)], 2)
    expect(mixed.map((t) => t.map((j) => [j.args[1], j.args[7], j.args[8]]))).toEqual([[[100, 0, 252]], [[100, 252, 400], [200, 0, 400]]])
  })

  it('batchTasks: a piece spanning two calls runs both in turn; more than MAX_SUB calls become further tasks', () => {
    const units = [0, 1, 2].flatMap((call) => [0, 1, 2, 3].map((lo) => ({ call, lo, cost: 1 })))
    const tasks = batchTasks(units, 2, (call, lo, hi) => ({ kind: JobKind.MatmulRange, args: [call, lo, hi] }))
    expect(tasks.map((t) => t.map((j) => j.args))).toEqual([[[0, 0, 4], [1, 0, 2]], [[1, 2, 4], [2, 0, 4]]])
    const many = Array.from({ length: MAX_SUB + 2 }, (_, call) => ({ call, lo: 0, cost: 1 }))
    const split = batchTasks(many, 1, (call, lo, hi) => ({ kind: JobKind.MatmulRange, args: [call, lo, hi] }))
    expect(split.map((t) => t.length)).toEqual([MAX_SUB, 2])
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
    const bufs: { free(): void }[] = [kt, vt]
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

  // decode (T 1: split by heads, below the key split: threads-split-keys.test.ts) and chunks (split by
  // tokens); keys fewer than values (channel-pruned); the chunk just appended (visible0 = n - T + 1)
  // and "sees everything" (visible0 = n)
  const attGrid = [
    [1, 3, 500, 64, 64], [1, 4, 500, 48, 64], [2, 3, 500, 64, 64], [5, 1, 600, 64, 64], [64, 3, 400, 64, 64], [128, 3, 1000, 32, 64], [33, 2, 200, 64, 40],
  ] as const
  it.each(attGrid)('attendCausal T %i x %i heads over %i keys (kd %i, vd %i), split by query rows', (T, hq, n, kd, vd) => {
    for (const visible0 of [n - T + 1, n]) {
      const want = attend(one, T, hq, n, kd, vd, visible0)
      for (const b of pools) expect(sameBits(attend(b, T, hq, n, kd, vd, visible0), want)).toBe(true)
    }
  })

  /** a batch of matmuls sharing x (a layer's Q, K, V or gate, up) through matmulBatch, or one by one on `one` */
  function matmulBatch(b: CreatedBackend, T: number, inDim: number, outDims: number[]): Float32Array[] {
    const h = b.heap
    const x = h.f32From(values(T * inDim, 1))
    const ws = outDims.map((o, i) => h.f32From(values(o * inDim, 20 + i, 0.1)))
    const ys = outDims.map((o) => h.allocF32(T * o))
    const calls = outDims.map((outDim, i) => ({ x: x.ptr, w: ws[i].ptr, bias: 0, y: ys[i].ptr, T, inDim, outDim }))
    if (b === one) for (const c of calls) b.matmul(c.x, c.w, c.bias, c.y, c.T, c.inDim, c.outDim)
    else b.matmulBatch!(calls)
    const out = ys.map((y) => y.view.slice())
    for (const buf of [x, ...ws, ...ys]) buf.free()
    return out
  }

  it.each([
    [1, 384, [384, 128, 128]], [128, 384, [384, 128, 128]], [1, 384, [1024, 1024]], [5, 384, [7, 1030]], [1, 64, [3]],
  ])('matmulBatch T %i, %i -> %j in one region equals the matmuls one by one on one thread', (T, inDim, outDims) => {
    const want = matmulBatch(one, T, inDim, outDims)
    for (const b of pools) matmulBatch(b, T, inDim, outDims).forEach((y, i) => expect(sameBits(y, want[i])).toBe(true))
  })

  /** out and lse of a batch, as one array; frees the buffers */
  function readOut(out: { view: Float32Array }, lse: { view: Float32Array }, bufs: { free(): void }[]): Float32Array {
    const res = new Float32Array(out.view.length + lse.view.length)
    res.set(out.view)
    res.set(lse.view, out.view.length)
    for (const x of bufs) x.free()
    return res
  }

  /** one attendCausal call per KV head (own pages, own q/out columns as attendCache lays them out), batched or one by one */
  function attendHeads(b: CreatedBackend, heads: number, T: number, group: number, n: number, visible0: number): Float32Array {
    const h = b.heap
    const d = 64
    const { tables, bufs } = headPages(b, heads, n)
    const qStride = heads * group * d
    const q = h.f32From(values(T * qStride, 7, 2))
    const out = h.allocF32(T * qStride), lse = h.allocF32(heads * T * group), scratch = h.allocF32(attendScratchFloats(d, T * group))
    bufs.push(q, out, lse, scratch)
    const calls = tables.map((t, g) => {
      const o = g * group * d * 4
      return { q: q.ptr + o, qStride, hq: group, T, kd: d, vd: d, ...t, n, visible0, scale: 0.125, out: out.ptr + o, outStride: qStride, lse: lse.ptr + g * T * group * 4, scratch: scratch.ptr }
    })
    if (b === one) for (const c of calls) b.attendCausal(c.q, c.qStride, c.hq, c.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.visible0, c.scale, c.out, c.outStride, c.lse, c.scratch)
    else b.attendCausalBatch!(calls)
    return readOut(out, lse, bufs)
  }

  // decode over 380 keys (split by heads across both KV heads; 384 and more split by keys on 3 threads:
  // threads-split-keys.test.ts), the first chunk (the causal triangle: split by cost), a later chunk,
  // 4 KV heads of one query head each
  it.each([
    [2, 1, 3, 380, 380], [2, 128, 3, 128, 1], [2, 128, 3, 1000, 873], [4, 1, 1, 190, 190], [3, 17, 2, 300, 284],
  ])('attendCausalBatch of %i KV heads, T %i x %i query heads over %i keys (visible0 %i) in one region equals the calls one by one', (heads, T, group, n, visible0) => {
    const want = attendHeads(one, heads, T, group, n, visible0)
    for (const b of pools) expect(sameBits(attendHeads(b, heads, T, group, n, visible0), want)).toBe(true)
  })

  /** decode over listed tokens (every `step`-th of n), one attendGathered call per KV head, batched or one by one */
  function gatheredHeads(b: CreatedBackend, heads: number, group: number, n: number, step: number): Float32Array {
    const h = b.heap
    const d = 64
    const { tables, bufs } = headPages(b, heads, n)
    const list = Int32Array.from({ length: Math.ceil(n / step) }, (_, i) => i * step)
    const idx = h.allocI32(list.length)
    idx.view.set(list)
    const q = h.f32From(values(heads * group * d, 7, 2))
    const out = h.allocF32(heads * group * d), lse = h.allocF32(heads * group), scratch = h.allocF32(attendScratchFloats(d, group))
    bufs.push(idx, q, out, lse, scratch)
    const calls = tables.map((t, g) => {
      const o = g * group * d * 4
      return { q: q.ptr + o, hq: group, kd: d, vd: d, ...t, idx: idx.ptr, nIdx: list.length, scale: 0.125, out: out.ptr + o, lse: lse.ptr + g * group * 4, scratch: scratch.ptr }
    })
    if (b === one) for (const c of calls) b.attendGathered(c.q, c.hq, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.idx, c.nIdx, c.scale, c.out, c.lse, c.scratch)
    else b.attendGatheredBatch!(calls)
    return readOut(out, lse, bufs)
  }

  // below the key split (threads-split-keys.test.ts): 380 and 190 keys listed
  it.each([[2, 3, 760, 2], [4, 1, 190, 1], [2, 3, 100, 3]])('attendGatheredBatch of %i KV heads x %i query heads, of %i keys every %i-th listed, in one region equals the calls one by one', (heads, group, n, step) => {
    const want = gatheredHeads(one, heads, group, n, step)
    for (const b of pools) expect(sameBits(gatheredHeads(b, heads, group, n, step), want)).toBe(true)
  })

  it.each([128 * 1024 + 3, 5000, 1024])('swiglu over %i elements, split at multiples of 4, equals one thread', (n) => {
    const run = (b: CreatedBackend) => {
      const g = b.heap.f32From(values(n, 5, 6)), u = b.heap.f32From(values(n, 6, 2)), o = b.heap.allocF32(n)
      b.swiglu(g.ptr, u.ptr, o.ptr, n)
      const r = o.view.slice()
      for (const x of [g, u, o]) x.free()
      return r
    }
    const want = run(one)
    for (const b of pools) expect(sameBits(run(b), want)).toBe(true)
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

describe('the pool wakes only the workers a region needs, and idle workers sleep', () => {
  let pool: ThreadPool
  beforeAll(async () => {
    const { exports, heap, module } = await loadWasm({ relaxed: false }, true)
    pool = await ThreadPool.start(module, heap, 3, nodeWorkerSpawner, exports as unknown as WebAssembly.Exports)
  })
  afterAll(() => pool.close())
  const empty = (n: number) => Array.from({ length: n }, () => [{ kind: JobKind.None, args: [] }])

  it('a region of 2 tasks on 4 threads wakes worker 0 alone; one of 4 wakes all three', () => {
    const before = pool.workerStates().map((s) => s.joined)
    for (let i = 0; i < 50; i++) pool.run(empty(2))
    expect(pool.workerStates().map((s, w) => s.joined - before[w])).toEqual([50, 0, 0])
    pool.run(empty(4))
    expect(pool.workerStates().map((s, w) => s.joined - before[w])).toEqual([51, 1, 1])
    // more tasks than threads: the extra ones are claimed, and the region still ends
    pool.run(empty(MAX_TASKS))
  })

  it('workers that have nothing to do stop spinning and sleep in Atomics.wait, and wake for the next region', async () => {
    pool.run(empty(4))
    const deadline = Date.now() + 5000
    while (!pool.workerStates().every((s) => s.sleeping) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(pool.workerStates().map((s) => s.sleeping)).toEqual([true, true, true])
    const before = pool.workerStates().map((s) => s.joined)
    pool.run(empty(4))
    expect(pool.workerStates().map((s, w) => s.joined - before[w])).toEqual([1, 1, 1])
  })

  it('refuses a region of more tasks, or a task of more kernel calls, than the control block holds, before running any', () => {
    const before = pool.workerStates().map((s) => s.joined)
    expect(() => pool.run(empty(MAX_TASKS + 1))).toThrow(`run: ${MAX_TASKS + 1} tasks, at most ${MAX_TASKS} a region`)
    expect(() => pool.run([[], Array.from({ length: MAX_SUB + 1 }, () => ({ kind: JobKind.None, args: [] }))])).toThrow(`run: task 1 holds ${MAX_SUB + 1} kernel calls, at most ${MAX_SUB}`)
    expect(pool.workerStates().map((s) => s.joined)).toEqual(before)
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

  it.each([0, -1, 2.5, Number.NaN])('createBackend refuses minPartMacs = %s naming it', async (minPartMacs) => {
    await expect(createBackend('wasm', { relaxed: false, threads: 2, spawnWorker: nodeWorkerSpawner, minPartMacs })).rejects.toThrow(`createBackend: minPartMacs must be a positive integer, got ${minPartMacs}`)
  })

  it.each([0, -1, 1.5, Number.NaN, 1000])('loadModel refuses threads = %s before reading any file', async (threads) => {
    await expect(loadModel('/nonexistent-folder', { threads })).rejects.toThrow(ModelInputError)
    await expect(loadModel('/nonexistent-folder', { threads })).rejects.toThrow(`threads must be an integer in [1, 256], got ${threads}`)
  })
})

describe('the fixture model on 2 and 3 threads equals 1 thread', () => {
  let m1: LlamaModel
  let m2: LlamaModel
  let m3: LlamaModel
  // every call split as finely as the threads allow (minPartMacs 1): the K/V projections, swiglu of one token
  let fine: CreatedBackend
  let m3fine: LlamaModel
  beforeAll(async () => {
    m1 = await loadModel(MODEL, { threads: 1, wasm: { relaxed: false } })
    m2 = await loadModel(MODEL, { threads: 2, wasm: { relaxed: false } })
    m3 = await loadModel(MODEL, { threads: 3, wasm: { relaxed: false } })
    fine = await createBackend('wasm', { relaxed: false, threads: 3, spawnWorker: nodeWorkerSpawner, minPartMacs: 1 })
    m3fine = await loadModel(MODEL, { backendInstance: fine })
  })
  afterAll(() => {
    m1.dispose()
    m2.dispose()
    m3.dispose()
    m3fine.dispose()
    fine.close?.()
  })

  /** prefill (chunks of 128) then greedy decode steps: the last prefill row's logits and every step's */
  function prefillDecode(m: LlamaModel, ids: number[], steps: number): Float32Array[] {
    const cache = m.newCache()
    try {
      const out: Float32Array[] = []
      const logits = new Float32Array(m.config.vocab)
      m.prefill(ids.slice(0, -1), cache)
      let next = ids[ids.length - 1]
      for (let s = 0; s < steps; s++) {
        m.forward.step([next], Int32Array.of(ids.length - 1 + s), cache, { decode: true, logits: 'last', out: logits })
        out.push(logits.slice())
        next = logits.indexOf(Math.max(...logits))
      }
      return out
    } finally {
      cache.dispose()
    }
  }

  it('kvkit/node loads with the threads asked for', () => {
    expect(m1.backend.threads).toBe(1)
    expect(m2.backend.threads).toBe(2)
    expect(m3.backend.threads).toBe(3)
  })

  const prompt = fixturePrompt
  it.each([1, 3, 130, 300])('logits of every position of a %i-token prompt, bit for bit', (n) => {
    expect(sameBits(m2.logits(prompt(n)), m1.logits(prompt(n)))).toBe(true)
  })

  // 3 threads split decode attention by keys from 384 keys of context (threads-split-keys.test.ts);
  // 2 threads always by heads on the fixture (one KV head each)
  it.each([[300, 3], [1200, 2]])('a %i-token prefill then 6 decode steps: every step\'s logits, bit for bit on 1 to %i threads', (n, most) => {
    const want = prefillDecode(m1, prompt(n), 6)
    for (const m of [m2, m3, m3fine].filter((x) => (x.backend.threads ?? 1) <= most)) prefillDecode(m, prompt(n), 6).forEach((l, s) => expect(sameBits(l, want[s])).toBe(true))
  })

  it('prefill chunks of 512 tokens on 3 threads give the logits of chunks of 128 on one (bench/threads.ts --chunk)', async () => {
    const big = await loadModel(MODEL, { threads: 3, chunk: 512, wasm: { relaxed: false } })
    try {
      expect(sameBits(big.logits(prompt(700)), m1.logits(prompt(700)))).toBe(true)
    } finally {
      big.dispose()
    }
  })

  it('a batch of 2100 small matmuls (more tasks than one region holds) runs in several regions, equal to one thread', () => {
    const run = (b: CreatedBackend | LlamaModel['backend']) => {
      const h = b.heap
      const x = h.f32From(values(8, 1)), w = h.f32From(values(2100 * 4 * 8, 2)), y = h.allocF32(2100 * 4)
      matmulAll(b, Array.from({ length: 2100 }, (_, i) => ({ x: x.ptr, w: w.ptr + i * 128, bias: 0, y: y.ptr + i * 16, T: 1, inDim: 8, outDim: 4 })))
      const out = y.view.slice()
      for (const buf of [x, w, y]) buf.free()
      return out
    }
    // 3 parts of 700 calls, each 88 tasks of at most 8 calls: 264 tasks
    expect(sameBits(run(fine), run(m1.backend))).toBe(true)
  })

  it.each(['full', 'snapkv:budget=0.25', 'h2o:budget=0.25', 'tokenselect:tokens=64,first=4,last=16'])('greedy generation with %s gives the same tokens and the same cache decisions', async (policy) => {
    const ids = prompt(200)
    const a = await m1.generate(ids, { maxNewTokens: 12, policy }).result
    const b = await m2.generate(ids, { maxNewTokens: 12, policy }).result
    expect(b.ids).toEqual(a.ids)
    expect(b.text).toBe(a.text)
  })

  it('dispose stops the worker threads: the backend then runs every kernel on the calling thread, its results as before', () => {
    const m = m2
    const heap = m.backend.heap
    const [T, inDim, outDim] = [64, 384, 1024]
    const x = heap.f32From(values(T * inDim, 1))
    const w = heap.f32From(values(inDim * outDim, 2))
    const [before, after] = [heap.allocF32(T * outDim), heap.allocF32(T * outDim)]
    // 25 M multiply-adds: split across both threads while the pool runs
    m.backend.matmul(x.ptr, w.ptr, 0, before.ptr, T, inDim, outDim)
    m.dispose()
    expect(m.backend.threads).toBe(1)
    m.backend.matmul(x.ptr, w.ptr, 0, after.ptr, T, inDim, outDim)
    expect(sameBits(after.view, before.view)).toBe(true)
    for (const b of [x, w, before, after]) b.free()
  })
})

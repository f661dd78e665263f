import { attendPackedCall, attendScratchFloats, type AttendCall, type GatheredCall, type MatmulCall, type ModelKernels, type PackedAttendCall } from '../model-kernels.js'
import { packedAttendScratch, type PackedKernels } from '../backend.js'
import type { Job, Task, ThreadPool } from './pool.js'
import { JobKind, MAX_SUB, MAX_TASKS } from './protocol.js'
import { cutByCost, piecesOf, splitByCost, splitRange } from './split.js'
import { decodePlan, denseKeyAlign, KEY_TILE, type DecodeShape } from './decode-split.js'
import { mergePartials } from '../merge-partials.js'
import type { Heap } from '../heap.js'

export { cutByCost, splitRange, splitByCost } from './split.js'

/**
 * Multiply-adds a part must have at least (the default of BackendOptions.minPartMacs). A region costs
 * the calling thread a few microseconds (writing the tasks, waking the workers, the join), about what
 * 2^15 multiply-adds of a decode step's weight-streaming matmul take from cache, so a region runs in
 * at most macs / 2^15 parts (a decode step's Q/K/V batch in 7, its gate/up batch in up to 24, a
 * prefill chunk's in as many as there are threads) and below 2 x 2^15 on the calling thread alone.
 */
export const MIN_PART_MACS = 1 << 15

/**
 * What one swiglu element (an exp, a divide, two multiplies) counts as against minPartMacs: 16
 * multiply-adds, so with the default 2^15 a part has at least 2048 elements: a decode step's 1 x 1024
 * stays on the calling thread, a prefill chunk's 128 x 1024 splits across every thread.
 */
export const SWIGLU_ELEMENT_MACS = 16

/** parts for a region of `macs` multiply-adds: at most the pool's threads, at least `minMacs` each */
export function partsFor(macs: number, threads: number, minMacs = MIN_PART_MACS): number {
  return Math.min(threads, MAX_TASKS, Math.floor(macs / minMacs))
}

/**
 * A region whose parts exceed this many multiply-adds (a prefill chunk's, not a decode step's) is cut
 * into STEAL tasks a thread rather than one: threads that finish early claim the rest, so a thread
 * that runs slower (a hyperthread sharing its core, a core the OS lends elsewhere for a while) holds
 * the region up by at most one small task. Decode regions keep one task a thread, each thread the same
 * weight rows every step (warm in its cache).
 */
export const STEAL_MIN_MACS = 1 << 20
export const STEAL = 4

/** tasks for a region of `macs` in `parts` parts: STEAL per part for large parts, else one */
export function tasksFor(macs: number, parts: number): number {
  return macs / parts >= STEAL_MIN_MACS ? Math.min(MAX_TASKS, parts * STEAL) : parts
}

/** A unit of a batch: unit `lo` (a query head or a token) of call `call`, costing `cost` multiply-adds. */
interface Unit {
  call: number
  lo: number
  cost: number
}

/**
 * Tasks of a batch: its units cut into `parts` pieces of near-equal cost (splitByCost); within a piece,
 * consecutive units of one call become one kernel call (`job(call, lo, hi)`), so a piece that spans the
 * end of one matrix and the start of the next runs two calls in turn. A piece of more than MAX_SUB calls
 * becomes several tasks.
 */
export function batchTasks(units: readonly Unit[], parts: number, job: (call: number, lo: number, hi: number) => Job): Task[] {
  const tasks: Task[] = []
  for (const [from, to] of splitByCost(units.map((u) => u.cost), parts)) {
    let jobs: Job[] = []
    for (let i = from; i < to; ) {
      let j = i + 1
      while (j < to && units[j].call === units[i].call && units[j].lo === units[j - 1].lo + 1) j++
      jobs.push(job(units[i].call, units[i].lo, units[j - 1].lo + 1))
      if (jobs.length === MAX_SUB) {
        tasks.push(jobs)
        jobs = []
      }
      i = j
    }
    if (jobs.length) tasks.push(jobs)
  }
  return tasks
}

/** A decode call as the split sees it: its shape, where its output goes, and its kernel call for a piece. */
interface DecodeCall extends DecodeShape {
  out: number
  lse: number
  /** the kernel call for heads h0 .. h0+n over keys [k0, k1), writing rows [n][vd] at out and [n] at lse (0: none) */
  job(h0: number, n: number, k0: number, k1: number, out: number, lse: number): Job
}

/** matmul parts cut at multiples of 4 output rows (the kernel's row blocking) */
const ROWS = 4

/**
 * Tasks of a matmul batch: the calls' output rows in sequence (a row of call c costs T x inDim
 * multiply-adds) cut into `parts` pieces of near-equal cost, each cut at a multiple of 4 rows of the
 * call it falls in; a piece spanning the end of one call and the start of the next runs both. Computed
 * from the cuts alone (no per-row list): a decode step makes some fifty of these.
 */
export function matmulTasks(calls: readonly MatmulCall[], parts: number): Task[] {
  const lengths = calls.map((c) => c.outDim)
  const tasks: Task[] = []
  for (const spans of piecesOf(cutByCost(lengths, calls.map((c) => c.T * c.inDim), parts, calls.map(() => ROWS)), lengths)) {
    const jobs: Job[] = spans.map(([c, from, to]) => {
      const m = calls[c]
      return { kind: JobKind.MatmulRange, args: [m.x, m.w, m.bias, m.y, m.T, m.inDim, m.outDim, from, to] }
    })
    for (let j = 0; j < jobs.length; j += MAX_SUB) tasks.push(jobs.slice(j, j + MAX_SUB))
  }
  return tasks
}

/**
 * Runs `tasks` on `pool` as one region, or as several in turn where a batch of many calls cuts into more
 * tasks than a region holds (MAX_TASKS): the tasks of a batch are independent, so their order of
 * regions changes no result.
 */
export function runRegions(pool: Pick<ThreadPool, 'run'>, tasks: readonly Task[], scratch?: { bytes: number }): void {
  for (let i = 0; i < tasks.length; i += MAX_TASKS) pool.run(i === 0 && tasks.length <= MAX_TASKS ? tasks : tasks.slice(i, i + MAX_TASKS), scratch)
}

/**
 * The runtime's heavy kernels split across a worker pool, each part a call of the same wasm kernel on
 * its own rows, so every output value is computed by the same instructions as on one thread and the
 * results are identical bit for bit, but for decode attention split by keys:
 * - matmul by output rows (matmulRange): each thread streams its own rows of the weight; a batch of
 *   matmuls (a layer's Q, K and V projections; gate and up) runs as one region, its rows cut by cost;
 * - attendCausal of a prefill chunk by query rows (tokens cut by cost: later tokens see more keys); a
 *   batch (one call per KV head) runs as one region; attendCausalRows (scattered rows) the same way;
 * - decode attention (attendCausal with T = 1, attendGathered over a selection), every KV head in one
 *   region, by query heads or, at long context with fewer row blocks than threads, by keys (split-K,
 *   decode-split.ts): then each thread's partial output and log-sum-exp are merged after the region
 *   (merge-partials.ts), which is the one-thread result within float32 rounding, not bit for bit;
 * - the same over float16 rows (calls marked `half`: the F16 kernels) and over packed pages
 *   (attendPackedBatch: KIVI's attendPacked and VidKV's attendSign, split as decode attention);
 * - swiglu by element ranges cut at multiples of 4 (the kernel's lanes: the same lanes as one thread).
 * Regions below 2 x minPartMacs run on the calling thread with the one-thread kernels. Key scoring
 * splits in scoring.ts.
 */
export function threadedModelKernels(base: ModelKernels & { heap: Heap; attendPacked?: PackedKernels['attendPacked']; attendSign?: PackedKernels['attendSign'] }, pool: ThreadPool, minPartMacs = MIN_PART_MACS): Pick<ModelKernels, 'matmul' | 'attendCausal' | 'attendCausalRows' | 'matmulBatch' | 'attendCausalBatch' | 'attendGatheredBatch' | 'attendPackedBatch' | 'swiglu'> {
  const heap = base.heap
  const run = (tasks: Task[], scratch?: { bytes: number }): void => runRegions(pool, tasks, scratch)
  const matmulBatch = (calls: readonly MatmulCall[]): void => {
    let macs = 0
    for (const c of calls) macs += c.T * c.inDim * c.outDim
    const parts = partsFor(macs, pool.threads, minPartMacs)
    if (parts < 2) {
      for (const c of calls) base.matmul(c.x, c.w, c.bias, c.y, c.T, c.inDim, c.outDim)
      return
    }
    run(matmulTasks(calls, tasksFor(macs, parts)))
  }

  /**
   * A decode batch (one call per KV head, T = 1) split by heads or by keys (decode-split.ts): jobs over
   * all of a row block's keys write the output in place; jobs over part of them write a partial output
   * and log-sum-exp to an arena block, merged into the output after the region. One piece a thread
   * (no work stealing, as for a decode step's matmuls): more pieces would mean more partials to merge.
   */
  const decodeBatch = (calls: readonly DecodeCall[], oneThread: () => void, scratchFloats = (rows: number, vd: number) => attendScratchFloats(vd, rows)): void => {
    let macs = 0
    for (const c of calls) macs += c.hq * c.keys * (c.kd + c.vd)
    const parts = partsFor(macs, pool.threads, minPartMacs)
    const plan = parts < 2 ? null : decodePlan(calls, parts)
    if (!plan || plan.pieces.length < 2) return oneThread()
    let floats = 0
    for (const piece of plan.pieces) for (const j of piece) if (j.k1 - j.k0 < calls[j.call].keys) floats += (j.h1 - j.h0) * (calls[j.call].vd + 1)
    // allocated before the region: growing the memory while a worker runs a kernel is not allowed
    const block = floats ? heap.alloc(floats * 4, 64) : 0
    try {
      let at = block
      // per row block (call, h0) split by keys: its partials in key order
      const merges = new Map<string, { call: number; h0: number; rows: number; outs: number[]; lses: number[] }>()
      let rows = 0
      let vd = 0
      const tasks: Task[] = []
      for (const piece of plan.pieces) {
        const jobs = piece.map((j) => {
          const c = calls[j.call]
          const n = j.h1 - j.h0
          rows = Math.max(rows, n)
          vd = Math.max(vd, c.vd)
          if (j.k1 - j.k0 === c.keys) return c.job(j.h0, n, j.k0, j.k1, c.out + j.h0 * c.vd * 4, c.lse && c.lse + j.h0 * 4)
          const out = at
          const lse = at + n * c.vd * 4
          at = lse + n * 4
          const key = `${j.call}/${j.h0}`
          const m = merges.get(key) ?? { call: j.call, h0: j.h0, rows: n, outs: [], lses: [] }
          merges.set(key, m)
          m.outs.push(out)
          m.lses.push(lse)
          return c.job(j.h0, n, j.k0, j.k1, out, lse)
        })
        for (let i = 0; i < jobs.length; i += MAX_SUB) tasks.push(jobs.slice(i, i + MAX_SUB))
      }
      run(tasks, { bytes: scratchFloats(rows, vd) * 4 })
      for (const m of merges.values()) {
        const c = calls[m.call]
        mergePartials(heap.F32, m.outs, m.lses, m.rows, c.vd, m.rows, 0, c.out + m.h0 * c.vd * 4, c.lse && c.lse + m.h0 * 4)
      }
    } finally {
      if (block) heap.release(block)
    }
  }

  // one call on the calling thread, by its rows' format
  const causalOne = (c: AttendCall): void =>
    (c.half ? base.attendCausalF16 : base.attendCausal)(c.q, c.qStride, c.hq, c.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.visible0, c.scale, c.out, c.outStride, c.lse, c.scratch)
  const gatheredOne = (c: GatheredCall): void =>
    (c.half ? base.attendGatheredF16 : base.attendGathered)(c.q, c.hq, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.idx, c.nIdx, c.scale, c.out, c.lse, c.scratch)

  const attendCausalBatch = (calls: readonly AttendCall[]): void => {
    if (calls.every((c) => c.T === 1)) {
      // heads h0 .. h0+n over keys [k0, k1): a range starting on a page boundary is itself a paged
      // stream (the tables from page k0 / pageTokens); T = 1 sees every key of it
      const decode = calls.map((c): DecodeCall => ({
        hq: c.hq, keys: Math.min(c.n, c.visible0), kd: c.kd, vd: c.vd, keyAlign: denseKeyAlign(c.pageTokens), out: c.out, lse: c.lse,
        job: (h0, n, k0, k1, out, lse) => {
          const page = (k0 / c.pageTokens) * 4
          const args = [c.q + h0 * c.kd * 4, c.qStride, n, 1, c.kd, c.vd, c.kTable + page, c.vTable + page, c.pageTokens, k1 - k0, k1 - k0, 0, out, c.outStride, lse, 0]
          return { kind: c.half ? JobKind.AttendCausalF16 : JobKind.AttendCausal, args, scale: c.scale }
        },
      }))
      return decodeBatch(decode, () => {
        for (const c of calls) causalOne(c)
      })
    }
    // units: tokens of a chunk, query heads of a decode call mixed in; cost = rows x keys seen x (kd + vd)
    const units: Unit[] = []
    let macs = 0
    calls.forEach((c, call) => {
      const perKey = c.kd + c.vd
      if (c.T === 1) for (let h = 0; h < c.hq; h++) units.push({ call, lo: h, cost: Math.min(c.n, c.visible0) * perKey })
      else for (let t = 0; t < c.T; t++) units.push({ call, lo: t, cost: c.hq * Math.min(c.n, c.visible0 + t) * perKey })
    })
    for (const u of units) macs += u.cost
    const parts = Math.min(partsFor(macs, pool.threads, minPartMacs), units.length)
    if (parts < 2) {
      for (const c of calls) causalOne(c)
      return
    }
    let rows = 0
    let vd = 0
    const tasks = batchTasks(units, Math.min(units.length, tasksFor(macs, parts)), (call, lo, hi) => {
      const c = calls[call]
      const p =
        c.T === 1
          ? { q: c.q + lo * c.kd * 4, hq: hi - lo, T: 1, vis: c.visible0, out: c.out + lo * c.vd * 4, lse: c.lse && c.lse + lo * 4 }
          : { q: c.q + lo * c.qStride * 4, hq: c.hq, T: hi - lo, vis: c.visible0 + lo, out: c.out + lo * c.outStride * 4, lse: c.lse && c.lse + lo * c.hq * 4 }
      rows = Math.max(rows, p.T * p.hq)
      vd = Math.max(vd, c.vd)
      // the scratch argument is each thread's own (protocol.ts scaleArg)
      const args = [p.q, c.qStride, p.hq, p.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, p.vis, 0, p.out, c.outStride, p.lse, 0]
      return { kind: c.half ? JobKind.AttendCausalF16 : JobKind.AttendCausal, args, scale: c.scale }
    })
    run(tasks, { bytes: attendScratchFloats(vd, rows) * 4 })
  }

  // scattered rows by tokens, each token costing the keys it sees (ends[t])
  const attendCausalRows: ModelKernels['attendCausalRows'] = (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale, out, outStride, lse, scratch) => {
    const seen = heap.I32.subarray(ends >> 2, (ends >> 2) + T)
    const units = Array.from(seen, (n, t): Unit => ({ call: 0, lo: t, cost: hq * n * (kd + vd) }))
    const macs = units.reduce((a, u) => a + u.cost, 0)
    const parts = Math.min(partsFor(macs, pool.threads, minPartMacs), T)
    if (parts < 2) return base.attendCausalRows(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale, out, outStride, lse, scratch)
    const tasks = batchTasks(units, Math.min(T, tasksFor(macs, parts)), (_, lo, hi) => ({
      kind: JobKind.AttendCausalRows,
      args: [q + lo * qStride * 4, qStride, hq, hi - lo, kd, vd, kTable, vTable, pageTokens, ends + lo * 4, 0, out + lo * outStride * 4, outStride, lse && lse + lo * hq * 4, 0],
      scale,
    }))
    run(tasks, { bytes: attendScratchFloats(vd, T * hq) * 4 })
  }

  const swiglu = (gate: number, up: number, out: number, n: number): void => {
    const parts = partsFor(n * SWIGLU_ELEMENT_MACS, pool.threads, minPartMacs)
    if (parts < 2) return base.swiglu(gate, up, out, n)
    run(splitRange(n, parts, 4).map(([from, to]) => [{ kind: JobKind.Swiglu, args: [gate + from * 4, up + from * 4, out + from * 4, to - from] }]))
  }

  // decode over listed tokens: split as attendCausal's decode, a key range being a range of the list
  const attendGatheredBatch = (calls: readonly GatheredCall[]): void => {
    const decode = calls.map((c): DecodeCall => ({
      hq: c.hq, keys: c.nIdx, kd: c.kd, vd: c.vd, keyAlign: KEY_TILE, out: c.out, lse: c.lse,
      job: (h0, n, k0, k1, out, lse) => {
        const args = [c.q + h0 * c.kd * 4, n, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.idx + k0 * 4, k1 - k0, 0, out, lse, 0]
        return { kind: c.half ? JobKind.AttendGatheredF16 : JobKind.AttendGathered, args, scale: c.scale }
      },
    }))
    decodeBatch(decode, () => {
      for (const c of calls) gatheredOne(c)
    })
  }

  // packed pages (KIVI, VidKV): every row sees every key, so the calls split as decode does, key pieces cut on
  // whole pages (whole token groups); each thread's scratch holds the longest call's scores
  const { attendPacked, attendSign } = base
  const attendPackedBatch = attendPacked && attendSign && ((calls: readonly PackedAttendCall[]): void => {
    const decode = calls.map((c): DecodeCall => ({
      hq: c.rows, keys: c.n, kd: c.kd, vd: c.vd, keyAlign: c.pageTokens, out: c.out, lse: c.lse,
      job: (h0, n, k0, k1, out, lse) => {
        const page = (k0 / c.pageTokens) * 4
        const head = [c.q + h0 * c.kd * 4, n, c.kd, c.vd, c.kTable + page, c.vTable + page, c.pageTokens, k1 - k0]
        if (c.sign) return { kind: JobKind.AttendSign, args: [...head, c.sign.kHi, c.sign.group, c.vBits, c.sign.vGroup, 0, out, c.vd, lse, 0], scale: c.scale }
        return { kind: JobKind.AttendPacked, args: [...head, c.kBits, c.group ?? 32, c.vBits, c.vGroup ?? 32, 0, out, c.vd, lse, 0], scale: c.scale }
      },
    }))
    const longest = Math.max(...calls.map((c) => c.n))
    const kd = Math.max(...calls.map((c) => c.kd))
    decodeBatch(decode, () => calls.forEach((c) => attendPackedCall({ attendPacked, attendSign }, c)), (rows, vd) => packedAttendScratch(rows, kd, vd, longest))
  })

  return {
    swiglu,
    attendGatheredBatch,
    ...(attendPackedBatch ? { attendPackedBatch } : {}),
    matmul: (x, w, bias, y, T, inDim, outDim) => matmulBatch([{ x, w, bias, y, T, inDim, outDim }]),
    matmulBatch,
    attendCausal: (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch) =>
      attendCausalBatch([{ q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch }]),
    attendCausalBatch,
    attendCausalRows,
  }
}

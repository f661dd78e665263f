import { attendScratchFloats, type AttendCall, type MatmulCall, type ModelKernels } from '../model-kernels.js'
import type { Job, Task, ThreadPool } from './pool.js'
import { JobKind, MAX_SUB, MAX_TASKS } from './protocol.js'
import { splitByCost, splitRange } from './split.js'

export { splitRange, splitByCost } from './split.js'

/**
 * Multiply-adds a part must have at least: handing a part to a worker costs a few microseconds, about
 * what 2^16 multiply-adds take, so a region runs in at most macs / 2^16 parts (a decode step's small
 * projections in 2 or 3, a prefill chunk's in as many as there are threads) and below 2 x 2^16 on the
 * calling thread alone.
 */
export const MIN_PART_MACS = 1 << 16

/**
 * Elements a part of swiglu must have at least: an element (an exp, a divide, two multiplies) costs
 * about 50 multiply-adds' time, so 2^11 of them about MIN_PART_MACS: a decode step's 1 x 1024 stays on
 * the calling thread, a prefill chunk's 128 x 1024 splits across every thread.
 */
export const MIN_SWIGLU_PART = 1 << 11

/** parts for a region of `macs` multiply-adds: at most the pool's threads, at least MIN_PART_MACS each */
export function partsFor(macs: number, threads: number): number {
  return Math.min(threads, MAX_TASKS, Math.floor(macs / MIN_PART_MACS))
}

/** A unit of a batch: call `call`'s units [lo, hi) (row blocks, heads or tokens), costing `cost` multiply-adds. */
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

/** rows of a matmul unit: blocks of 4 output rows (the kernel's row blocking) */
const ROWS = 4

/**
 * The runtime's heavy kernels split across a worker pool, each part a call of the same wasm kernel on
 * its own rows, so every output value is computed by the same instructions as on one thread and the
 * results are identical bit for bit:
 * - matmul by output rows (matmulRange): each thread streams its own rows of the weight; a batch of
 *   matmuls (a layer's Q, K and V projections; gate and up) runs as one region, its rows cut by cost;
 * - attendCausal by query rows: tokens of a prefill chunk (cut by cost: later tokens see more keys),
 *   query heads of a decode step; a batch (one call per KV head) runs as one region.
 * - swiglu by element ranges cut at multiples of 4 (the kernel's lanes: the same lanes as one thread).
 * Regions below 2 x MIN_PART_MACS run on the calling thread with the one-thread kernels.
 */
export function threadedModelKernels(base: ModelKernels, pool: ThreadPool): Pick<ModelKernels, 'matmul' | 'attendCausal' | 'matmulBatch' | 'attendCausalBatch' | 'swiglu'> {
  const matmulBatch = (calls: readonly MatmulCall[]): void => {
    let macs = 0
    for (const c of calls) macs += c.T * c.inDim * c.outDim
    const parts = partsFor(macs, pool.threads)
    if (parts < 2) {
      for (const c of calls) base.matmul(c.x, c.w, c.bias, c.y, c.T, c.inDim, c.outDim)
      return
    }
    const units: Unit[] = []
    calls.forEach((c, call) => {
      for (let b = 0; b * ROWS < c.outDim; b++) units.push({ call, lo: b, cost: c.T * c.inDim * (Math.min(c.outDim, (b + 1) * ROWS) - b * ROWS) })
    })
    pool.run(
      batchTasks(units, parts, (call, lo, hi) => {
        const c = calls[call]
        return { kind: JobKind.MatmulRange, args: [c.x, c.w, c.bias, c.y, c.T, c.inDim, c.outDim, lo * ROWS, Math.min(c.outDim, hi * ROWS)] }
      }),
    )
  }

  const attendCausalBatch = (calls: readonly AttendCall[]): void => {
    // units: query heads of a decode call (T = 1), tokens of a chunk; cost = rows x keys seen x (kd + vd)
    const units: Unit[] = []
    let macs = 0
    calls.forEach((c, call) => {
      const perKey = c.kd + c.vd
      if (c.T === 1) for (let h = 0; h < c.hq; h++) units.push({ call, lo: h, cost: Math.min(c.n, c.visible0) * perKey })
      else for (let t = 0; t < c.T; t++) units.push({ call, lo: t, cost: c.hq * Math.min(c.n, c.visible0 + t) * perKey })
    })
    for (const u of units) macs += u.cost
    const parts = Math.min(partsFor(macs, pool.threads), units.length)
    if (parts < 2) {
      for (const c of calls) base.attendCausal(c.q, c.qStride, c.hq, c.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.visible0, c.scale, c.out, c.outStride, c.lse, c.scratch)
      return
    }
    let rows = 0
    let vd = 0
    const tasks = batchTasks(units, parts, (call, lo, hi) => {
      const c = calls[call]
      const p =
        c.T === 1
          ? { q: c.q + lo * c.kd * 4, hq: hi - lo, T: 1, vis: c.visible0, out: c.out + lo * c.vd * 4, lse: c.lse && c.lse + lo * 4 }
          : { q: c.q + lo * c.qStride * 4, hq: c.hq, T: hi - lo, vis: c.visible0 + lo, out: c.out + lo * c.outStride * 4, lse: c.lse && c.lse + lo * c.hq * 4 }
      rows = Math.max(rows, p.T * p.hq)
      vd = Math.max(vd, c.vd)
      // the scratch argument is each thread's own (protocol.ts SCRATCH_ARG)
      const args = [p.q, c.qStride, p.hq, p.T, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, p.vis, 0, p.out, c.outStride, p.lse, 0]
      return { kind: JobKind.AttendCausal, args, scale: c.scale }
    })
    pool.run(tasks, { bytes: attendScratchFloats(vd, rows) * 4 })
  }

  const swiglu = (gate: number, up: number, out: number, n: number): void => {
    const parts = Math.min(pool.threads, MAX_TASKS, Math.floor(n / MIN_SWIGLU_PART))
    if (parts < 2) return base.swiglu(gate, up, out, n)
    pool.run(splitRange(n, parts, 4).map(([from, to]) => [{ kind: JobKind.Swiglu, args: [gate + from * 4, up + from * 4, out + from * 4, to - from] }]))
  }

  return {
    swiglu,
    matmul: (x, w, bias, y, T, inDim, outDim) => matmulBatch([{ x, w, bias, y, T, inDim, outDim }]),
    matmulBatch,
    attendCausal: (q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch) =>
      attendCausalBatch([{ q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch }]),
    attendCausalBatch,
  }
}

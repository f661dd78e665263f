import { attendScratchFloats, type ModelKernels } from '../model-kernels.js'
import type { Job, ThreadPool } from './pool.js'
import { JobKind } from './protocol.js'

type Fn = (...args: number[]) => number

/**
 * Multiply-adds a part must have at least: handing a part to a worker costs a few microseconds, about
 * what 2^16 multiply-adds take, so a call runs in at most macs / 2^16 parts (a decode step's small
 * projections in 2 or 3, a prefill chunk's in as many as there are threads) and below 2 x 2^16 on the
 * calling thread alone.
 */
export const MIN_PART_MACS = 1 << 16

/** parts for a call of `macs` multiply-adds: at most the pool's threads, at least MIN_PART_MACS each */
function partsFor(macs: number, threads: number): number {
  return Math.min(threads, Math.floor(macs / MIN_PART_MACS))
}

/** [from, to) ranges cutting `count` into at most `parts` pieces, each a multiple of `unit` (the last takes the rest) */
export function splitRange(count: number, parts: number, unit: number): [number, number][] {
  const units = Math.ceil(count / unit)
  const p = Math.max(1, Math.min(parts, units))
  const out: [number, number][] = []
  for (let i = 0, from = 0; i < p; i++) {
    const to = i === p - 1 ? count : Math.min(count, Math.round(((i + 1) * units) / p) * unit)
    if (to > from) out.push([from, to])
    from = to
  }
  return out
}

/**
 * The runtime's heavy kernels split across a worker pool, each part a call of the same wasm kernel on
 * its own rows, so every output value is computed by the same instructions as on one thread and the
 * results are identical bit for bit:
 * - matmul by output rows (matmulRange): each thread streams its own rows of the weight;
 * - attendCausal by query rows: token ranges of a prefill chunk, ranges of query heads of a decode step
 *   (each row's online softmax runs over the same key tiles whichever thread holds it).
 * The calling thread takes the first part; small calls stay on it.
 */
export function threadedModelKernels(exports: WebAssembly.Exports, base: ModelKernels, pool: ThreadPool): Pick<ModelKernels, 'matmul' | 'attendCausal'> {
  const matmulRange = exports.matmulRange as Fn
  const attendCausal = exports.attendCausal as Fn
  const run = (parts: { job: Job; own: () => void }[]): void => {
    pool.run(parts.slice(1).map((p) => p.job), parts[0].own)
  }
  return {
    matmul(x, w, bias, y, T, inDim, outDim) {
      const parts = partsFor(T * inDim * outDim, pool.threads)
      if (parts < 2) return base.matmul(x, w, bias, y, T, inDim, outDim)
      const ranges = splitRange(outDim, parts, 4)
      run(
        ranges.map(([from, to]) => {
          const args = [x, w, bias, y, T, inDim, outDim, from, to]
          return { job: { kind: JobKind.MatmulRange, args }, own: () => void matmulRange(...args) }
        }),
      )
    },
    attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch) {
      const count = partsFor(T * hq * Math.min(n, visible0 + T) * (kd + vd), pool.threads)
      if (count < 2 || T * hq < 2) {
        return base.attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale, out, outStride, lse, scratch)
      }
      // rows: token ranges, or for a single token ranges of query heads
      const parts =
        T > 1
          ? splitRange(T, count, 1).map(([t0, t1]) => ({ q: q + t0 * qStride * 4, hq, T: t1 - t0, vis: visible0 + t0, out: out + t0 * outStride * 4, lse: lse && lse + t0 * hq * 4 }))
          : splitRange(hq, count, 1).map(([h0, h1]) => ({ q: q + h0 * kd * 4, hq: h1 - h0, T: 1, vis: visible0, out: out + h0 * vd * 4, lse: lse && lse + h0 * 4 }))
      run(
        parts.map((p, i) => {
          const own = () => void attendCausal(p.q, qStride, p.hq, p.T, kd, vd, kTable, vTable, pageTokens, n, p.vis, scale, p.out, outStride, p.lse, scratch)
          const mine = i === 0 ? scratch : pool.scratchFor(i - 1, attendScratchFloats(vd, p.T * p.hq) * 4)
          const args = [p.q, qStride, p.hq, p.T, kd, vd, kTable, vTable, pageTokens, n, p.vis, 0, p.out, outStride, p.lse, mine]
          return { job: { kind: JobKind.AttendCausal, args, scale }, own }
        }),
      )
    },
  }
}

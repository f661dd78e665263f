/**
 * The worker pool's shared control block: one Int32Array over a SharedArrayBuffer, read and written with
 * Atomics by the main thread and every worker. The main thread writes each worker's job into its slot,
 * sets PENDING to the worker count and bumps SEQ; each worker runs its slot (KIND 0: nothing this round)
 * and decrements PENDING. Workers spin briefly on SEQ before sleeping in Atomics.wait, so the kernels of
 * a decode step (tens of microseconds each) do not pay a futex wake-up every call.
 */
export const SEQ = 0
export const PENDING = 1
export const STOP = 2
/** set to 1 + the worker index by a worker whose kernel threw; the main thread raises it */
export const FAILED = 3
export const SLOT0 = 16
export const SLOT_INTS = 20

export const JobKind = {
  None: 0,
  /** matmulRange(x, w, bias, y, T, inDim, outDim, oFrom, oTo) */
  MatmulRange: 1,
  /** attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale*, out, outStride, lse, scratch) */
  AttendCausal: 2,
} as const

/** AttendCausal's one float argument (scale, argument 11) is stored as float32 bits */
export const SCALE_ARG = 11

export function controlInts(workers: number): number {
  return SLOT0 + workers * SLOT_INTS
}

/** spins on a shared word before sleeping: long enough to span the gap between a step's kernel calls */
export const SPIN = 1 << 15

/** What a worker receives once: its index, the module, the shared memory and control block, its scratch. */
export interface WorkerInit {
  type: 'init'
  index: number
  module: WebAssembly.Module
  memory: WebAssembly.Memory
  control: SharedArrayBuffer
  /** 512 bytes of the arena: the worker instance's tile row-pointer lists (useThreadScratch) */
  rowScratch: number
}

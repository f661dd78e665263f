/**
 * The worker pool's shared control block: one Int32Array over a SharedArrayBuffer, read and written with
 * Atomics by the calling thread and every worker.
 *
 * A parallel region (ThreadPool.run) is a list of tasks. The calling thread writes them to the task
 * table, sets COUNT, NEXT (the first task not handed out) and PENDING (the workers it wakes), then bumps
 * the WAKE word of only the workers it needs: a call split in 3 wakes 2 workers, and the other workers
 * are neither woken nor waited for. Thread i (0 the caller, i > 0 worker i - 1) first runs task i, then
 * claims further tasks from NEXT with Atomics.add (work stealing: a slow core does not hold the region
 * up). A worker that is done decrements PENDING. With as many tasks as threads the assignment is
 * static, so a decode step's thread keeps the same weight rows in its cache from step to step.
 *
 * Each thread's words sit on their own 64-byte line, so spinning on one does not pull another's line
 * away. Waiting is spin then sleep: a worker polls its WAKE word with Atomics.load SPIN times (the gap
 * between a step's kernel calls is microseconds, a futex wake-up costs tens), then announces SLEEP and
 * blocks in Atomics.wait; the caller calls Atomics.notify only for a worker that announced it, and the
 * last worker done notifies the caller only when the caller sleeps (MAIN_SLEEP). An idle pool thus
 * sleeps after about SPIN polls and burns no CPU.
 */

/** header words (line 0) */
export const NEXT = 0
export const COUNT = 1
export const PENDING = 2
export const STOP = 3
/** set to the thread id (1 + worker index) of a worker whose kernel threw; the calling thread raises it */
export const FAILED = 4
export const MAIN_SLEEP = 5

/** Int32 words per cache line: each thread's words start on their own line */
export const LINE = 16
/**
 * The words of worker w's line, which starts at LINE * (1 + w) (lineOf): WAKE (bumped to start a
 * region), SLEEP (1 while the worker blocks in Atomics.wait), SCRATCH (byte pointer to the worker's
 * attention scratch for this region), JOINED (regions the worker was woken for: tests read it).
 */
export const Slot = { WAKE: 0, SLEEP: 1, SCRATCH: 2, JOINED: 3 } as const

/** sub-calls a task may hold: a part of a batch that spans several matrices runs them in turn */
export const MAX_SUB = 8
/** Int32 words of one sub-call: the kind and up to 16 arguments */
export const SUB_INTS = 17
/** a task: its sub-call count, then MAX_SUB sub-calls */
export const TASK_INTS = 1 + MAX_SUB * SUB_INTS
/** tasks one region may hold: STEAL (kernels.ts) a thread for 64 threads */
export const MAX_TASKS = 256

export const JobKind = {
  /** an empty sub-call: the dispatch micro-benchmark's region (bench/threads-dispatch.ts) */
  None: 0,
  /** matmulRange(x, w, bias, y, T, inDim, outDim, oFrom, oTo) */
  MatmulRange: 1,
  /** attendCausal(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, scale*, out, outStride, lse, scratch*) */
  AttendCausal: 2,
  /** swiglu(gate, up, out, n) */
  Swiglu: 3,
} as const

/** AttendCausal's one float argument (scale, argument 11) is stored as float32 bits */
export const SCALE_ARG = 11
/** AttendCausal's scratch argument (15) is not stored: each thread passes its own block */
export const SCRATCH_ARG = 15

/** first word of the task table */
export function tasksAt(workers: number): number {
  return LINE * (1 + workers)
}

export function controlInts(workers: number): number {
  return tasksAt(workers) + MAX_TASKS * TASK_INTS
}

/** first word of worker w's line */
export function lineOf(worker: number): number {
  return LINE * (1 + worker)
}

/**
 * Polls of a shared word before sleeping: with Atomics.load at a few nanoseconds a poll, about 0.1 ms,
 * longer than the gap between a step's kernel calls and short enough that an idle pool soon sleeps.
 */
export const SPIN = 1 << 15

/** What a worker receives once: its index, the module, the shared memory and control block, its scratch. */
export interface WorkerInit {
  type: 'init'
  index: number
  /** workers in the pool (where the task table starts) */
  workers: number
  module: WebAssembly.Module
  memory: WebAssembly.Memory
  control: SharedArrayBuffer
  /** 512 bytes of the arena: the worker instance's tile row-pointer lists (useThreadScratch) */
  rowScratch: number
}

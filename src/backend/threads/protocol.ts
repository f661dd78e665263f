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
 * away. Waiting is spin then sleep (awaitChange): a worker polls its WAKE word with Atomics.load for
 * SPIN_MS (the gap between a step's kernel calls is microseconds, a futex wake-up costs tens), then
 * announces SLEEP and blocks in Atomics.wait; the caller calls Atomics.notify only for a worker that announced it, and the
 * last worker done notifies the caller only when the caller sleeps (MAIN_SLEEP). An idle pool thus
 * sleeps after SPIN_MS and burns no CPU.
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
/** Int32 words of one sub-call: the kind and up to 17 arguments (attendSign's) */
export const SUB_INTS = 18
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
  /** attendGathered(q, hq, kd, vd, kTable, vTable, pageTokens, idx, nIdx, scale*, out, lse, scratch*) */
  AttendGathered: 4,
  /** scoreKeysStrided(q, qHeads, d, table, pageTokens, n, scale*, out, outStride) */
  ScoreKeys: 5,
  /** scoreKeysF16Strided(q, qHeads, d, table, pageTokens, n, scale*, out, outStride) */
  ScoreKeysF16: 6,
  /** scorePackedKeysMixedStrided(q, qHeads, d, table, pageTokens, n, bits, hi, scale*, out, outStride, scratch*, group); group 64 or 128 (hi 0): scorePackedKeysGroupStrided */
  ScorePackedKeys: 7,
  /** scorePackedKeysIntGroupStrided(q, qHeads, d, table, pageTokens, n, bits, group, scale*, out, outStride, scratch*) */
  ScorePackedKeysInt: 8,
  /** attendCausalF16: AttendCausal's arguments over float16 rows */
  AttendCausalF16: 9,
  /** attendGatheredF16: AttendGathered's arguments over float16 rows */
  AttendGatheredF16: 10,
  /** attendPackedGroup(q, rows, d, vd, kTable, vTable, pageTokens, n, kBits, group, vBits, vGroup, scale*, out, outStride, lse, scratch*) */
  AttendPacked: 11,
  /** attendSign(q, rows, kd, d, kTable, vTable, pageTokens, n, kHi, group, vBits, vGroup, scale*, out, outStride, lse, scratch*) */
  AttendSign: 12,
  /** compactRowsKV(kTable, vTable, pageTokens, kRowBytes, vRowBytes, keep, nKeep) */
  CompactRowsKV: 13,
  /** attendCausalRows(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, ends, scale*, out, outStride, lse, scratch*) */
  AttendCausalRows: 14,
} as const

/**
 * Where a job's one float argument (the attention or score scale) sits among its arguments, stored as
 * float32 bits. A scratch argument (scratch* above) is not read from the table: each thread passes its
 * own block.
 */
export function scaleArg(kind: number): number {
  switch (kind) {
    case JobKind.AttendGathered:
    case JobKind.AttendGatheredF16:
      return 9
    case JobKind.AttendCausalRows:
      return 10
    case JobKind.ScoreKeys:
    case JobKind.ScoreKeysF16:
      return 6
    case JobKind.ScorePackedKeys:
    case JobKind.ScorePackedKeysInt:
      return 8
    case JobKind.AttendSign:
    case JobKind.AttendPacked:
      return 12
    default:
      return 11
  }
}

/**
 * A worker's own arena block: its tile row-pointer lists (useThreadScratch), then its scaled-query
 * buffer of scoreKeysF16 (useThreadQueryScratch).
 */
export const ROW_POINTER_BYTES = 512
export const QUERY_SCRATCH_FLOATS = 4096
export const WORKER_SCRATCH_BYTES = ROW_POINTER_BYTES + QUERY_SCRATCH_FLOATS * 4

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
 * How long a thread polls a shared word before sleeping, in milliseconds. Timed rather than counted:
 * a poll takes about a nanosecond on an idle fast core and tens on a loaded one. 0.25 ms spans the gaps
 * between a decode step's regions and between steps, and a prefill chunk's serial parts between its
 * regions (a layer's cache append of 128 rows: about 0.2 ms), so a busy pool rarely pays a futex
 * wake-up. Longer is not better where cores are oversubscribed: a thread that spins holds a core its
 * partner needs (on the 2-core dev machine at load 20, 1 ms made a region after idle cost 4 ms, 10x
 * what the former 2^15-poll spin cost there). An idle pool sleeps 0.25 ms after its last region.
 */
export const SPIN_MS = 0.25

/** polls between reads of the clock while spinning */
const CLOCK_EVERY = 256

/**
 * Returns once ctl[at] !== value: polls for SPIN_MS, then, where the thread may block (not a browser's
 * main thread), sets ctl[flag] to 1 and sleeps in Atomics.wait until notified (the writer notifies
 * only when it reads the flag set), and clears the flag on waking.
 */
export function awaitChange(ctl: Int32Array, at: number, value: number, flag: number, block: boolean): void {
  let deadline = 0
  for (let spin = 1; Atomics.load(ctl, at) === value; spin++) {
    if (spin % CLOCK_EVERY !== 0) continue
    const now = performance.now()
    if (deadline === 0) deadline = now + SPIN_MS
    else if (now >= deadline && block) {
      Atomics.store(ctl, flag, 1)
      Atomics.wait(ctl, at, value)
      Atomics.store(ctl, flag, 0)
    }
  }
}

/** What a worker receives once: its index, the module, the shared memory and control block, its scratch. */
export interface WorkerInit {
  type: 'init'
  index: number
  /** workers in the pool (where the task table starts) */
  workers: number
  module: WebAssembly.Module
  memory: WebAssembly.Memory
  control: SharedArrayBuffer
  /** WORKER_SCRATCH_BYTES of the arena: the worker instance's own buffers (useThreadScratch, useThreadQueryScratch) */
  rowScratch: number
}

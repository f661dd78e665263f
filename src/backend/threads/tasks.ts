/**
 * Running a region's tasks (protocol.ts), the same code on the calling thread and in every worker, so a
 * task's kernel gets the same arguments whichever thread claims it.
 */
import { COUNT, JobKind, NEXT, scaleArg, SUB_INTS, TASK_INTS } from './protocol.js'

type Fn = (...args: number[]) => number

/** the kernels a task may call: one instance's exports (each thread has its own instance) */
export interface TaskKernels {
  matmulRange: Fn
  attendCausal: Fn
  attendCausalRows: Fn
  swiglu: Fn
  attendGathered: Fn
  attendCausalF16: Fn
  attendGatheredF16: Fn
  attendPackedGroup: Fn
  attendSign: Fn
  scoreKeysStrided: Fn
  scoreKeysF16Strided: Fn
  scorePackedKeysMixedStrided: Fn
  scorePackedKeysGroupStrided: Fn
  scorePackedKeysIntGroupStrided: Fn
  compactRowsKV: Fn
}

export function taskKernels(exports: WebAssembly.Exports): TaskKernels {
  const f = (name: keyof TaskKernels) => exports[name] as Fn
  return {
    matmulRange: f('matmulRange'), attendCausal: f('attendCausal'), attendCausalRows: f('attendCausalRows'), swiglu: f('swiglu'), attendGathered: f('attendGathered'),
    attendCausalF16: f('attendCausalF16'), attendGatheredF16: f('attendGatheredF16'), attendPackedGroup: f('attendPackedGroup'), attendSign: f('attendSign'),
    scoreKeysStrided: f('scoreKeysStrided'), scoreKeysF16Strided: f('scoreKeysF16Strided'),
    scorePackedKeysMixedStrided: f('scorePackedKeysMixedStrided'), scorePackedKeysGroupStrided: f('scorePackedKeysGroupStrided'), scorePackedKeysIntGroupStrided: f('scorePackedKeysIntGroupStrided'),
    compactRowsKV: f('compactRowsKV'),
  }
}

/** runs task `t` of the table at word `table`; `scratch`: this thread's kernel scratch (byte pointer) */
function runTask(k: TaskKernels, ctl: Int32Array, f32: Float32Array, table: number, t: number, scratch: number): void {
  const base = table + t * TASK_INTS
  const subs = ctl[base]
  for (let s = 0; s < subs; s++) {
    const b = base + 1 + s * SUB_INTS
    const kind = ctl[b]
    const a = b + 1
    const scale = f32[a + scaleArg(kind)]
    if (kind === JobKind.MatmulRange) k.matmulRange(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8])
    else if (kind === JobKind.AttendCausal || kind === JobKind.AttendCausalF16) {
      const attend = kind === JobKind.AttendCausal ? k.attendCausal : k.attendCausalF16
      attend(
        ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8], ctl[a + 9], ctl[a + 10],
        scale, ctl[a + 12], ctl[a + 13], ctl[a + 14], scratch,
      )
    } else if (kind === JobKind.AttendCausalRows) {
      k.attendCausalRows(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8], ctl[a + 9], scale, ctl[a + 11], ctl[a + 12], ctl[a + 13], scratch)
    } else if (kind === JobKind.AttendPacked || kind === JobKind.AttendSign) {
      const attend = kind === JobKind.AttendPacked ? k.attendPackedGroup : k.attendSign
      attend(
        ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8], ctl[a + 9], ctl[a + 10], ctl[a + 11],
        scale, ctl[a + 13], ctl[a + 14], ctl[a + 15], scratch,
      )
    } else if (kind === JobKind.Swiglu) k.swiglu(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3])
    else if (kind === JobKind.AttendGathered || kind === JobKind.AttendGatheredF16) {
      const attend = kind === JobKind.AttendGathered ? k.attendGathered : k.attendGatheredF16
      attend(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], ctl[a + 8], scale, ctl[a + 10], ctl[a + 11], scratch)
    } else if (kind === JobKind.ScoreKeys || kind === JobKind.ScoreKeysF16) {
      const score = kind === JobKind.ScoreKeys ? k.scoreKeysStrided : k.scoreKeysF16Strided
      score(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], scale, ctl[a + 7], ctl[a + 8])
    } else if (kind === JobKind.ScorePackedKeysInt) {
      k.scorePackedKeysIntGroupStrided(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], scale, ctl[a + 9], ctl[a + 10], scratch)
    } else if (kind === JobKind.CompactRowsKV) k.compactRowsKV(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6])
    else if (kind === JobKind.ScorePackedKeys) {
      // group 32 (ctl[a + 12]): the mixed kernel, which also reads ABI 1.5's int2+int1 keys (hi)
      if (ctl[a + 12] === 32) k.scorePackedKeysMixedStrided(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 7], scale, ctl[a + 9], ctl[a + 10], scratch)
      else k.scorePackedKeysGroupStrided(ctl[a], ctl[a + 1], ctl[a + 2], ctl[a + 3], ctl[a + 4], ctl[a + 5], ctl[a + 6], ctl[a + 12], scale, ctl[a + 9], ctl[a + 10], scratch)
    }
  }
}

/**
 * Thread `tid` runs task tid (when there is one), then claims tasks from NEXT until none is left. A
 * task that throws does not stop the thread: the region's other tasks still run (the caller waits for
 * them), and the first error is thrown once the table is drained.
 */
export function drainTasks(k: TaskKernels, ctl: Int32Array, f32: Float32Array, table: number, tid: number, scratch: number): void {
  const count = Atomics.load(ctl, COUNT)
  let error: { e: unknown } | undefined
  const one = (t: number) => {
    try {
      runTask(k, ctl, f32, table, t, scratch)
    } catch (e) {
      error ??= { e }
    }
  }
  if (tid < count) one(tid)
  for (let t = Atomics.add(ctl, NEXT, 1); t < count; t = Atomics.add(ctl, NEXT, 1)) one(t)
  if (error) throw error.e
}

import type { Heap } from '../heap.js'
import {
  awaitChange, controlInts, COUNT, FAILED, lineOf, MAIN_SLEEP, MAX_SUB, MAX_TASKS, NEXT, PENDING, scaleArg, Slot, STOP,
  SUB_INTS, TASK_INTS, tasksAt, WORKER_SCRATCH_BYTES, type WorkerInit,
} from './protocol.js'
import type { KernelWorker, SpawnWorker } from './spawn.js'
import { drainTasks, taskKernels, type TaskKernels } from './tasks.js'

/** One kernel call of a task: the job kind and its arguments (protocol.ts). */
export interface Job {
  kind: number
  args: readonly number[]
  /** the one float argument (the attention kernels' scale, protocol.ts scaleArg) */
  scale?: number
}

/** What one thread claims at a time: kernel calls run in order (at most MAX_SUB). */
export type Task = readonly Job[]

export class ThreadPoolError extends Error {
  override name = 'ThreadPoolError'
}

/** the compiled worker: tests run the TypeScript sources, whose worker must still be plain JS */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts') ? new URL('../../../dist/src/backend/threads/worker.js', import.meta.url) : new URL('./worker.js', import.meta.url)
}

/** Whether this thread may block in Atomics.wait (a browser's main thread may not: it spins instead). */
function mayBlock(): boolean {
  try {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0)
    return true
  } catch {
    return false
  }
}

/**
 * A pool of kernel workers on one shared arena: `run` runs a parallel region of tasks (protocol.ts) on
 * the workers it needs and on this thread, and returns when every task is done, so kernel calls stay
 * synchronous. Each worker holds its own instance of the threads build (per-instance globals, shared
 * memory) and scratch blocks of the arena; the calling thread runs its tasks on its own instance.
 */
export class ThreadPool {
  private readonly ctl: Int32Array
  private readonly f32: Float32Array
  private readonly table: number
  private readonly kernels: TaskKernels
  private readonly scratch: { ptr: number; bytes: number }[]
  private readonly block = mayBlock()
  private closed = false

  private constructor(
    private readonly heap: Heap,
    private readonly workers: KernelWorker[],
    control: SharedArrayBuffer,
    private readonly rowScratch: number[],
    exports: WebAssembly.Exports,
  ) {
    this.ctl = new Int32Array(control)
    this.f32 = new Float32Array(control)
    this.table = tasksAt(rowScratch.length)
    this.kernels = taskKernels(exports)
    // one attention scratch block per worker, and the last for the calling thread
    this.scratch = Array.from({ length: rowScratch.length + 1 }, () => ({ ptr: 0, bytes: 0 }))
  }

  /**
   * Starts `count` workers on the module (a threads build) and the heap's shared memory; resolves once
   * every worker has instantiated it. `exports`: the calling thread's instance of the same module, which
   * runs the caller's tasks. A worker that fails to start rejects the promise, all stopped.
   */
  static async start(module: WebAssembly.Module, heap: Heap, count: number, spawn: SpawnWorker, exports: WebAssembly.Exports): Promise<ThreadPool> {
    if (!(heap.memory.buffer instanceof SharedArrayBuffer)) throw new ThreadPoolError('the worker pool needs the arena in a shared WebAssembly.Memory')
    const control = new SharedArrayBuffer(controlInts(count) * 4)
    const rowScratch = Array.from({ length: count }, () => heap.alloc(WORKER_SCRATCH_BYTES, 64))
    const workers: KernelWorker[] = []
    const pool = new ThreadPool(heap, workers, control, rowScratch, exports)
    try {
      await Promise.all(
        rowScratch.map((scratch, index) => {
          const w = spawn(workerUrl())
          workers.push(w)
          return new Promise<void>((resolve, reject) => {
            w.listen(
              (m) => {
                const msg = m as { type: string; message?: string }
                if (msg.type === 'ready') resolve()
                else reject(new ThreadPoolError(`kernel worker ${index}: ${msg.message}`))
              },
              (e) => reject(new ThreadPoolError(`kernel worker ${index}: ${e.message}`)),
            )
            const init: WorkerInit = { type: 'init', index, workers: count, module, memory: heap.memory, control, rowScratch: scratch }
            w.postMessage(init)
          })
        }),
      )
    } catch (e) {
      pool.close()
      throw e
    }
    // regions run synchronously through shared memory, so an idle pool must not keep the process alive
    for (const w of workers) w.unref?.()
    return pool
  }

  /**
   * threads a call can use: the workers and the calling thread; once closed, the calling thread alone,
   * so every threaded kernel (each sends a call to the pool only when it splits into 2 parts or more)
   * runs on the calling thread, whatever its size, as the one-thread backend does, rather than a large
   * call throwing where a small one ran (a cache's compaction after its backend was closed)
   */
  get threads(): number {
    return this.closed ? 1 : this.workers.length + 1
  }

  /**
   * Runs a parallel region and returns when every task is done. Thread i first takes task i, then
   * threads claim the rest in order, so with tasks.length <= threads the split is static; only
   * min(tasks, threads) - 1 workers are woken. `scratch`: for attention tasks, the bytes of the scratch
   * block each thread passes its kernel (the pool's, grown on demand). A kernel that failed in a
   * worker is raised here as a ThreadPoolError after every task has finished; the caller's own error as is.
   * Throws ThreadPoolError, before any task runs, once the pool is closed (`threads` is then 1, so the
   * threaded kernels no longer call it).
   */
  run(tasks: readonly Task[], scratch?: { bytes: number }): void {
    if (this.closed) throw new ThreadPoolError('the worker pool was closed')
    if (tasks.length > MAX_TASKS) throw new ThreadPoolError(`run: ${tasks.length} tasks, at most ${MAX_TASKS} a region`)
    const ctl = this.ctl
    for (let t = 0; t < tasks.length; t++) {
      const task = tasks[t]
      if (task.length > MAX_SUB) throw new ThreadPoolError(`run: task ${t} holds ${task.length} kernel calls, at most ${MAX_SUB}`)
      const base = this.table + t * TASK_INTS
      ctl[base] = task.length
      for (let s = 0; s < task.length; s++) {
        const job = task[s]
        const b = base + 1 + s * SUB_INTS
        ctl[b] = job.kind
        for (let a = 0; a < job.args.length; a++) ctl[b + 1 + a] = job.args[a]
        if (job.scale !== undefined) this.f32[b + 1 + scaleArg(job.kind)] = job.scale
      }
    }
    const helpers = Math.min(this.workers.length, tasks.length - 1)
    Atomics.store(ctl, COUNT, tasks.length)
    Atomics.store(ctl, NEXT, helpers + 1)
    Atomics.store(ctl, PENDING, helpers)
    // scratch blocks first: growing one may grow the memory, which no thread should see mid-kernel
    const own = scratch ? this.scratchFor(this.workers.length, scratch.bytes) : 0
    if (scratch) for (let w = 0; w < helpers; w++) ctl[lineOf(w) + Slot.SCRATCH] = this.scratchFor(w, scratch.bytes)
    for (let w = 0; w < helpers; w++) {
      const line = lineOf(w)
      Atomics.add(ctl, line + Slot.WAKE, 1)
      if (Atomics.load(ctl, line + Slot.SLEEP)) Atomics.notify(ctl, line + Slot.WAKE)
    }
    let ownError: { e: unknown } | undefined
    try {
      drainTasks(this.kernels, ctl, this.f32, this.table, 0, own)
    } catch (e) {
      ownError = { e }
    }
    // the last worker done notifies only when MAIN_SLEEP is set
    for (let left = Atomics.load(ctl, PENDING); left !== 0; left = Atomics.load(ctl, PENDING)) awaitChange(ctl, PENDING, left, MAIN_SLEEP, this.block)
    const failed = Atomics.exchange(ctl, FAILED, 0)
    if (ownError) throw ownError.e
    if (failed) throw new ThreadPoolError(`a kernel failed in worker ${failed - 1}`)
  }

  /** worker i's scratch block (i = workers: the calling thread's) of at least `bytes` (grown on demand; the pool owns and frees it) */
  scratchFor(i: number, bytes: number): number {
    const s = this.scratch[i]
    if (s.bytes < bytes) {
      if (s.ptr) this.heap.release(s.ptr)
      s.ptr = this.heap.alloc(bytes, 64)
      s.bytes = bytes
    }
    return s.ptr
  }

  /** per worker: whether it sleeps in Atomics.wait now, and the regions it was woken for so far */
  workerStates(): { sleeping: boolean; joined: number }[] {
    return this.workers.map((_, w) => ({ sleeping: Atomics.load(this.ctl, lineOf(w) + Slot.SLEEP) === 1, joined: Atomics.load(this.ctl, lineOf(w) + Slot.JOINED) }))
  }

  /** Stops and terminates the workers and frees their arena blocks; `threads` is 1 from then on. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    Atomics.store(this.ctl, STOP, 1)
    for (let w = 0; w < this.workers.length; w++) {
      Atomics.add(this.ctl, lineOf(w) + Slot.WAKE, 1)
      Atomics.notify(this.ctl, lineOf(w) + Slot.WAKE)
    }
    for (const w of this.workers) void w.terminate()
    for (const p of this.rowScratch) this.heap.release(p)
    for (const s of this.scratch) if (s.ptr) this.heap.release(s.ptr)
  }
}

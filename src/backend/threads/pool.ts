import type { Heap } from '../heap.js'
import { controlInts, FAILED, PENDING, SCALE_ARG, SEQ, SLOT0, SLOT_INTS, SPIN, STOP, type WorkerInit } from './protocol.js'
import type { KernelWorker, SpawnWorker } from './spawn.js'

/** One worker's share of a kernel call: the job kind and its arguments (protocol.ts). */
export interface Job {
  kind: number
  args: readonly number[]
  /** the one float argument (AttendCausal's scale) */
  scale?: number
}

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
 * A pool of kernel workers on one shared arena: `run` hands each worker a job, runs the caller's own
 * share on this thread and returns when every share is done, so kernel calls stay synchronous. Each
 * worker holds its own instance of the threads build (per-instance globals, shared memory) and a
 * scratch block of the arena; the calling thread keeps the module's static scratch.
 */
export class ThreadPool {
  private readonly ctl: Int32Array
  private readonly f32: Float32Array
  private readonly scratch: { ptr: number; bytes: number }[]
  private readonly block = mayBlock()
  private closed = false

  private constructor(
    private readonly heap: Heap,
    private readonly workers: KernelWorker[],
    control: SharedArrayBuffer,
    private readonly rowScratch: number[],
  ) {
    this.ctl = new Int32Array(control)
    this.f32 = new Float32Array(control)
    this.scratch = rowScratch.map(() => ({ ptr: 0, bytes: 0 }))
  }

  /**
   * Starts `count` workers on the module (a threads build) and the heap's shared memory; resolves once
   * every worker has instantiated it. A worker that fails to start rejects the promise, all stopped.
   */
  static async start(module: WebAssembly.Module, heap: Heap, count: number, spawn: SpawnWorker): Promise<ThreadPool> {
    if (!(heap.memory.buffer instanceof SharedArrayBuffer)) throw new ThreadPoolError('the worker pool needs the arena in a shared WebAssembly.Memory')
    const control = new SharedArrayBuffer(controlInts(count) * 4)
    const rowScratch = Array.from({ length: count }, () => heap.alloc(512, 64))
    const workers: KernelWorker[] = []
    const pool = new ThreadPool(heap, workers, control, rowScratch)
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
            const init: WorkerInit = { type: 'init', index, module, memory: heap.memory, control, rowScratch: scratch }
            w.postMessage(init)
          })
        }),
      )
    } catch (e) {
      pool.close()
      throw e
    }
    return pool
  }

  /** threads a call can use: the workers and the calling thread */
  get threads(): number {
    return this.workers.length + 1
  }

  /**
   * Runs jobs[i] on worker i (at most one job per worker; workers past the list idle this round) and
   * `own` on the calling thread, and returns when all are done. A kernel that failed in a worker is
   * raised here as a ThreadPoolError after every share has finished.
   */
  run(jobs: readonly Job[], own: () => void): void {
    if (this.closed) throw new ThreadPoolError('the worker pool was closed')
    if (jobs.length > this.workers.length) throw new ThreadPoolError(`run: ${jobs.length} jobs for ${this.workers.length} workers`)
    const ctl = this.ctl
    for (let i = 0; i < this.workers.length; i++) {
      const base = SLOT0 + i * SLOT_INTS
      const job = jobs[i]
      ctl[base] = job ? job.kind : 0
      if (!job) continue
      for (let a = 0; a < job.args.length; a++) ctl[base + 1 + a] = job.args[a]
      if (job.scale !== undefined) this.f32[base + 1 + SCALE_ARG] = job.scale
    }
    Atomics.store(ctl, PENDING, this.workers.length)
    Atomics.add(ctl, SEQ, 1)
    Atomics.notify(ctl, SEQ)
    let ownError: unknown
    try {
      own()
    } catch (e) {
      ownError = e
    }
    for (let spin = 0; ; spin++) {
      const left = Atomics.load(ctl, PENDING)
      if (left === 0) break
      if (spin >= SPIN && this.block) Atomics.wait(ctl, PENDING, left)
    }
    const failed = Atomics.exchange(ctl, FAILED, 0)
    if (ownError !== undefined) throw ownError
    if (failed) throw new ThreadPoolError(`a kernel failed in worker ${failed - 1}`)
  }

  /** worker i's scratch block of at least `bytes` (grown on demand; the pool owns and frees it) */
  scratchFor(i: number, bytes: number): number {
    const s = this.scratch[i]
    if (s.bytes < bytes) {
      if (s.ptr) this.heap.release(s.ptr)
      s.ptr = this.heap.alloc(bytes, 64)
      s.bytes = bytes
    }
    return s.ptr
  }

  /** Stops and terminates the workers and frees their arena blocks. Idempotent. */
  close(): void {
    if (this.closed) return
    this.closed = true
    Atomics.store(this.ctl, STOP, 1)
    Atomics.add(this.ctl, SEQ, 1)
    Atomics.notify(this.ctl, SEQ)
    for (const w of this.workers) void w.terminate()
    for (const p of this.rowScratch) this.heap.release(p)
    for (const s of this.scratch) if (s.ptr) this.heap.release(s.ptr)
  }
}

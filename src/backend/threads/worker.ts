/**
 * A kernel worker of the pool (pool.ts): one instance of the threads build on the shared arena memory.
 * It takes one init message, answers `ready`, then never returns to its event loop: it waits on the
 * control block for jobs (protocol.ts), runs its slot and counts itself done, until STOP.
 * Runs as a Web Worker (browsers, Deno, Bun) or a Node worker thread; nothing here imports node:
 * statically, the Node port is found at run time.
 */
import { awaitChange, FAILED, lineOf, MAIN_SLEEP, PENDING, QUERY_SCRATCH_FLOATS, ROW_POINTER_BYTES, Slot, STOP, tasksAt, type WorkerInit } from './protocol.js'
import { drainTasks, taskKernels } from './tasks.js'

type Fn = (...args: number[]) => number

interface Port {
  post(m: unknown): void
  listen(cb: (m: WorkerInit) => void): void
}

async function port(): Promise<Port> {
  const g = globalThis as unknown as { postMessage?: (m: unknown) => void; addEventListener?: (t: string, cb: (e: MessageEvent) => void) => void; WorkerGlobalScope?: unknown }
  if (g.WorkerGlobalScope !== undefined && g.postMessage && g.addEventListener) {
    return { post: (m) => g.postMessage!(m), listen: (cb) => g.addEventListener!('message', (e) => cb(e.data as WorkerInit)) }
  }
  const spec = 'node:worker_threads'
  const { parentPort } = (await import(/* @vite-ignore */ spec)) as typeof import('node:worker_threads')
  if (!parentPort) throw new Error('kvkit kernel worker: started outside a worker')
  return { post: (m) => parentPort.postMessage(m), listen: (cb) => parentPort.once('message', cb) }
}

function serve(init: WorkerInit, instance: WebAssembly.Instance, ready: () => void): void {
  const kernels = taskKernels(instance.exports)
  const ctl = new Int32Array(init.control)
  const f32 = new Float32Array(init.control)
  const line = lineOf(init.index)
  const wake = line + Slot.WAKE
  const table = tasksAt(init.workers)
  const tid = init.index + 1
  // the wake word is read before `ready`: the pool's first region can only come after it
  let seen = Atomics.load(ctl, wake)
  ready()
  for (;;) {
    // spin, then sleep until woken: announced in SLEEP, so the pool notifies only sleeping workers
    awaitChange(ctl, wake, seen, line + Slot.SLEEP, true)
    seen = Atomics.load(ctl, wake)
    if (Atomics.load(ctl, STOP)) return
    Atomics.add(ctl, line + Slot.JOINED, 1)
    try {
      drainTasks(kernels, ctl, f32, table, tid, ctl[line + Slot.SCRATCH])
    } catch {
      Atomics.compareExchange(ctl, FAILED, 0, tid)
    }
    if (Atomics.sub(ctl, PENDING, 1) === 1 && Atomics.load(ctl, MAIN_SLEEP)) Atomics.notify(ctl, PENDING)
  }
}

const p = await port()
p.listen((init) => {
  const abort = (): never => {
    throw new Error('wasm abort in a kernel worker')
  }
  WebAssembly.instantiate(init.module, { env: { memory: init.memory, abort } }).then(
    (instance) => {
      ;(instance.exports.useThreadScratch as Fn)(init.rowScratch)
      ;(instance.exports.useThreadQueryScratch as Fn)(init.rowScratch + ROW_POINTER_BYTES, QUERY_SCRATCH_FLOATS)
      serve(init, instance, () => p.post({ type: 'ready' }))
      // STOP: the worker returns; its owner terminates it
    },
    (err: Error) => p.post({ type: 'error', message: err.message }),
  )
})

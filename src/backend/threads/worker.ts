/**
 * A kernel worker of the pool (pool.ts): one instance of the threads build on the shared arena memory.
 * It takes one init message, answers `ready`, then never returns to its event loop: it waits on the
 * control block for jobs (protocol.ts), runs its slot and counts itself done, until STOP.
 * Runs as a Web Worker (browsers, Deno, Bun) or a Node worker thread; nothing here imports node:
 * statically, the Node port is found at run time.
 */
import { FAILED, JobKind, PENDING, SCALE_ARG, SEQ, SLOT0, SLOT_INTS, SPIN, STOP, type WorkerInit } from './protocol.js'

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
  const e = instance.exports as Record<string, Fn>
  const ctl = new Int32Array(init.control)
  const f32 = new Float32Array(init.control)
  const base = SLOT0 + init.index * SLOT_INTS
  const a = (i: number): number => ctl[base + 1 + i]
  // the round counter is read before `ready`: the pool's first round can only come after it
  let seen = Atomics.load(ctl, SEQ)
  ready()
  for (;;) {
    for (let spin = 0; Atomics.load(ctl, SEQ) === seen; spin++) {
      if (spin >= SPIN) Atomics.wait(ctl, SEQ, seen)
    }
    seen = Atomics.load(ctl, SEQ)
    if (Atomics.load(ctl, STOP)) return
    try {
      const kind = ctl[base]
      if (kind === JobKind.MatmulRange) e.matmulRange(a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8))
      else if (kind === JobKind.AttendCausal) {
        e.attendCausal(a(0), a(1), a(2), a(3), a(4), a(5), a(6), a(7), a(8), a(9), a(10), f32[base + 1 + SCALE_ARG], a(12), a(13), a(14), a(15))
      }
    } catch {
      Atomics.compareExchange(ctl, FAILED, 0, init.index + 1)
    }
    if (Atomics.sub(ctl, PENDING, 1) === 1) Atomics.notify(ctl, PENDING)
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
      serve(init, instance, () => p.post({ type: 'ready' }))
      // STOP: the worker returns; its owner terminates it
    },
    (err: Error) => p.post({ type: 'error', message: err.message }),
  )
})

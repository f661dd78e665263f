/**
 * How the pool starts its workers, per runtime. The browser-safe entry knows the global `Worker`
 * (browsers, Deno, Bun); Node's worker threads come from `kvkit/node` (nodeWorkerSpawner), injected
 * through the `spawnWorker` option, so this entry never imports node: modules.
 */

/** A started worker, whichever runtime made it. */
export interface KernelWorker {
  postMessage(message: unknown): void
  terminate(): unknown
  /** the worker's messages and its uncaught errors */
  listen(onMessage: (message: unknown) => void, onError: (error: Error) => void): void
  /**
   * Lets the process exit while this worker lives (Node's and Bun's Worker.unref). The pool calls it once
   * the worker is ready: before, its 'ready' message is what the process waits for (a 'message'
   * listener on a Node worker refs it again, so an unref at spawn would not hold either way).
   */
  unref?(): void
}

/** Starts a module worker running the script at `url`. */
export type SpawnWorker = (url: URL) => KernelWorker

/** Module workers through the global `Worker` (browsers, Deno, Bun), or undefined where there is none. */
export function webWorkerSpawner(): SpawnWorker | undefined {
  const W = (globalThis as { Worker?: typeof Worker }).Worker
  if (typeof W !== 'function') return undefined
  return (url) => {
    const w = new W(url, { type: 'module' })
    return {
      postMessage: (m) => w.postMessage(m),
      terminate: () => w.terminate(),
      listen(onMessage, onError) {
        w.addEventListener('message', (e) => onMessage(e.data))
        w.addEventListener('error', (e) => onError(new Error(e.message || 'kernel worker failed to start')))
      },
      // Bun's workers can be unref'd like Node's: an idle pool then does not keep the process alive
      unref: () => (w as unknown as { unref?: () => void }).unref?.(),
    }
  }
}

/**
 * Whether this runtime can share a wasm memory between threads: SharedArrayBuffer exists (browsers give
 * it only to cross-origin isolated pages) and a shared WebAssembly.Memory can be made.
 */
export function sharedMemorySupported(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean; SharedArrayBuffer?: unknown }
  if (typeof g.SharedArrayBuffer !== 'function' || g.crossOriginIsolated === false) return false
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer
  } catch {
    return false
  }
}

/** the most kernel threads createBackend and loadModel run: each is a worker with its own stack and a spin-wait, and more only contend */
export const MAX_THREADS = 256

/** The cores the runtime reports (navigator.hardwareConcurrency), 1 where it reports none. */
export function hardwareThreads(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency
  return Number.isInteger(n) && n! > 0 ? n! : 1
}

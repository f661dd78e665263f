import { join } from 'node:path'
import { abortReason } from '../model/abort.js'
import { pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import { packageRoot } from './paths.js'
import type { SampleOutcome } from './results.js'
import type { SampleJob, SessionOptions } from './session.js'

/** the compiled worker (tests run the TypeScript sources, whose worker must still be plain JS) */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts')
    ? pathToFileURL(join(packageRoot(), 'dist', 'src', 'eval', 'worker.js'))
    : new URL('./worker.js', import.meta.url)
}

/**
 * Runs jobs on `count` worker threads, each holding its own model; a worker gets its next job as soon
 * as it answers, so uneven samples balance out. The first error, `record`'s own included, stops every
 * worker and rejects, and so does `signal`'s abort, with its reason.
 */
export function runInWorkers(count: number, session: SessionOptions, jobs: readonly SampleJob[], record: (o: SampleOutcome) => void, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const workers: Worker[] = []
    let next = 0
    let finished = 0
    let failed = false
    const onAbort = (): void => stop(abortReason(signal, 'evaluation'))
    const stop = (err?: unknown): void => {
      if (failed) return
      if (err) failed = true
      signal?.removeEventListener('abort', onAbort)
      for (const w of workers) void w.terminate()
      if (err) reject(err)
      else resolve()
    }
    // aborted while evaluate measured the wasm build: no worker starts
    if (signal?.aborted) return reject(abortReason(signal, 'evaluation'))
    signal?.addEventListener('abort', onAbort)
    const feed = (w: Worker): void => {
      if (next < jobs.length) w.postMessage(jobs[next++])
    }
    for (let i = 0; i < count; i++) {
      const w = new Worker(workerUrl(), { workerData: session })
      workers.push(w)
      w.on('message', (m: { type: 'ready' } | { type: 'done' } | { type: 'outcome'; outcome: SampleOutcome } | { type: 'error'; message: string }) => {
        if (failed) return
        if (m.type === 'ready') feed(w)
        else if (m.type === 'error') stop(new Error(m.message))
        else if (m.type === 'outcome') {
          // a caller's callback (onProgress, onOutcome) that throws here threw from the worker's event
          // handler: an uncaught exception that ended the process, the other workers still running
          try {
            record(m.outcome)
          } catch (e) {
            stop(e)
          }
        }
        else if (++finished === jobs.length) stop()
        else feed(w)
      })
      w.on('error', (e) => stop(e))
      w.on('exit', (code) => {
        if (!failed && finished < jobs.length && code !== 0) stop(new Error(`evaluation worker exited with code ${code}`))
      })
    }
  })
}

import { parentPort, workerData } from 'node:worker_threads'
import { EvalSession, type SampleJob, type SessionOptions } from './session.js'

/**
 * A worker thread of the harness: loads its own copy of the model, then runs the samples it is sent,
 * one at a time, answering with each policy's outcome as it finishes, then `done` (or the error, as a message).
 */
const port = parentPort!
const session = EvalSession.open(workerData as SessionOptions)
session.then(
  () => port.postMessage({ type: 'ready' }),
  (e: Error) => port.postMessage({ type: 'error', message: e.message }),
)
port.on('message', async (job: SampleJob) => {
  try {
    await (await session).run(job, (outcome) => port.postMessage({ type: 'outcome', outcome }))
    port.postMessage({ type: 'done' })
  } catch (e) {
    port.postMessage({ type: 'error', message: (e as Error).message })
  }
})

import { parentPort, workerData } from 'node:worker_threads'
import { EvalSession, type SampleJob, type SessionOptions } from './session.js'

/**
 * A worker thread of the harness: loads its own copy of the model, then runs the samples it is sent,
 * one at a time, answering each with its outcomes (one per policy) (or the error, as a message).
 */
const port = parentPort!
const session = EvalSession.open(workerData as SessionOptions)
session.then(
  () => port.postMessage({ type: 'ready' }),
  (e: Error) => port.postMessage({ type: 'error', message: e.message }),
)
port.on('message', async (job: SampleJob) => {
  try {
    port.postMessage({ type: 'outcomes', outcomes: await (await session).run(job) })
  } catch (e) {
    port.postMessage({ type: 'error', message: (e as Error).message })
  }
})

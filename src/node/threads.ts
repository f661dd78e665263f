import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import type { SpawnWorker } from '../backend/threads/spawn.js'
import { MAX_THREADS } from '../backend/threads/spawn.js'
import { ModelInputError } from '../model/errors.js'

/**
 * Kernel workers as Node worker threads (Node has no global Worker): what kvkit/node's loadModel and
 * createBackend pass as `spawnWorker`. Workers are unref'd once started (the pool
 * calls `unref`), so an idle pool does not keep the process alive; dispose the model (or close the backend) to stop them.
 */
export const nodeWorkerSpawner: SpawnWorker = (url) => {
  const w = new Worker(url)
  return {
    postMessage: (m) => w.postMessage(m),
    terminate: () => w.terminate(),
    listen(onMessage, onError) {
      w.on('message', onMessage)
      w.on('error', onError)
    },
    unref: () => w.unref(),
  }
}

/**
 * The default kernel threads under Node: KVKIT_THREADS when set (a positive integer, as OMP_NUM_THREADS
 * is for PyTorch: for machines shared with other work, where spinning workers would contend), else the
 * cores this process may use (os.availableParallelism), at most MAX_THREADS (256), loadModel's limit.
 * @throws ModelInputError (what loadModel throws for a bad `threads`) naming a KVKIT_THREADS that is no integer in [1, 256]
 */
export function nodeThreads(): number {
  let env: string | undefined
  try {
    env = process.env.KVKIT_THREADS
  } catch {
    env = undefined // Deno without --allow-env: as if unset
  }
  if (env === undefined || env === '') return Math.min(availableParallelism(), MAX_THREADS)
  const n = Number(env)
  if (!(Number.isInteger(n) && n >= 1 && n <= MAX_THREADS)) throw new ModelInputError(`KVKIT_THREADS must be an integer in [1, ${MAX_THREADS}], got ${JSON.stringify(env)}`)
  return n
}

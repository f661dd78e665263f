import { fileURLToPath } from 'node:url'
import type { Backend } from '../backend/backend.js'
import { checkLoadOptions, loadModelFrom, openSource, type ModelInput } from '../model/load.js'
import type { LlamaModel } from '../model/model.js'
import { isUrl } from '../model/source.js'
import type { LoadOptions } from '../model/types.js'
import { DirectorySource } from './directory.js'
import { nodeThreads, nodeWorkerSpawner } from './threads.js'

/**
 * kvkit's loadModel plus model folders on the file system: a string that is not a URL is a folder path
 * (a `file:` URL too), and kernel threads on Node's worker threads (`threads` defaults to the available
 * cores). Everything else as the root entry's loadModel.
 */
export async function loadModel(input: ModelInput, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  checkLoadOptions(options)
  // Node has no global Worker: the kernel threads are Node worker threads, one per available core by default
  // (KVKIT_THREADS is checked here, before any file is read)
  const threads = options.threads ?? nodeThreads()
  options = { ...options, threads, spawnWorker: options.spawnWorker ?? nodeWorkerSpawner }
  const opts = { onProgress: options.onProgress, signal: options.signal }
  if (input instanceof URL && input.protocol === 'file:') return loadModelFrom(await DirectorySource.open(fileURLToPath(input), opts), options)
  if (typeof input === 'string' && !isUrl(input)) return loadModelFrom(await DirectorySource.open(input, opts), options)
  if (typeof input === 'string' && input.startsWith('file:')) return loadModel(new URL(input), options)
  return loadModelFrom(openSource(input, options), options)
}

import { stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Backend } from '../backend/backend.js'
import { checkLoadOptions, loadModelFrom, openSource, type ModelInput } from '../model/load.js'
import type { LlamaModel } from '../model/model.js'
import { isUrl } from '../model/source.js'
import type { LoadOptions } from '../model/types.js'
import { ModelLoadError } from '../model/errors.js'
import { DirectorySource } from './directory.js'
import { checkGgufPath, checkModelFolder } from './model-path.js'
import { nodeThreads, nodeWorkerSpawner } from './threads.js'

/**
 * kvkit's loadModel plus the file system: a string that is not a URL (or a `file:` URL) is a model
 * folder, or a `.gguf` file (any path that is a file is read as GGUF); and kernel threads on Node's
 * worker threads (`threads` defaults to the available cores). Everything else as the root entry's loadModel.
 * A file that is not GGUF (a folder's config.json) or a folder without config.json, tokenizer.json or
 * weights is a ModelLoadError before any work, saying what was found and what loadModel expects; so is a
 * path that does not exist ("GGUF file not found" for a name ending in .gguf, else "model folder not found").
 */
export async function loadModel(input: ModelInput, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  checkLoadOptions(options)
  // Node has no global Worker: the kernel threads are Node worker threads, one per available core by default
  // (KVKIT_THREADS is checked here, before any file is read)
  const threads = options.threads ?? nodeThreads()
  options = { ...options, threads, spawnWorker: options.spawnWorker ?? nodeWorkerSpawner }
  const opts = { onProgress: options.onProgress, signal: options.signal }
  if (typeof input === 'string' && input.startsWith('file:')) input = new URL(input)
  if (input instanceof URL && input.protocol === 'file:') input = fileURLToPath(input)
  if (typeof input === 'string' && !isUrl(input)) {
    // a file (not a folder) is a GGUF file; a tokenizer.json in its folder is used when present
    const st = await stat(input).catch(() => null)
    // a missing path named like a GGUF file was meant as one: "model folder not found" sent the caller looking for a folder
    if (!st && /\.gguf$/i.test(input)) throw new ModelLoadError(`GGUF file not found: ${input}`)
    if (st?.isFile()) await checkGgufPath(input)
    if (st && !st.isDirectory()) return loadModelFrom(await DirectorySource.open(dirname(input), opts), options, basename(input))
    if (st) await checkModelFolder(input)
    return loadModelFrom(await DirectorySource.open(input, opts), options)
  }
  const { source, gguf } = openSource(input, options)
  return loadModelFrom(source, options, gguf)
}

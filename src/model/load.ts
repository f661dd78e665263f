import { createBackend } from '../backend/index.js'
import { hardwareThreads } from '../backend/threads/spawn.js'
import type { Backend } from '../backend/backend.js'
import { parseConfig } from './config.js'
import { ModelInputError, ModelLoadError } from './errors.js'
import { readJsonFile } from './json-file.js'
import { checkChunk, checkKvDtype, LlamaModel } from './model.js'
import { FilesSource, isFileSource, isUrl, throwIfAborted, UrlSource, type ModelFileSource, type ModelFiles } from './source.js'
import { HfTokenizerAdapter } from './tokenizer.js'
import type { LoadOptions } from './types.js'
import type { BackendName } from '../backend/backend.js'
import { loadWeights } from './weights.js'

/**
 * Where a model comes from, in any runtime: a base URL (a `URL`, or a string starting with a scheme such
 * as `https://`; a Hugging Face hub `https://huggingface.co/ORG/NAME/resolve/main/` works), files the user
 * picked (name -> Blob/ArrayBuffer, or an `<input type=file>`'s FileList), or any ModelFileSource. A
 * folder path needs the file system: `loadModel` from `kvkit/node` takes those too.
 */
export type ModelInput = string | URL | ModelFiles | ModelFileSource

/** Turns what the user gave into a source; folder paths are for kvkit/node. */
export function openSource(input: ModelInput, options: LoadOptions): ModelFileSource {
  const opts = { onProgress: options.onProgress, signal: options.signal }
  if (input instanceof URL) return new UrlSource(input, opts)
  if (typeof input === 'string') {
    if (isUrl(input)) return new UrlSource(input, opts)
    throw new ModelLoadError(`loadModel: ${JSON.stringify(input)} is not a URL; load a model folder with loadModel from 'kvkit/node' (Node, Bun, Deno)`)
  }
  if (isFileSource(input)) return input
  if (!input || typeof input !== 'object') throw new ModelLoadError(`loadModel: expected a URL, a map of files or a ModelFileSource, got ${input === null ? 'null' : typeof input}`)
  return new FilesSource(input, opts)
}

/**
 * Loads a Hugging Face model folder from `input` (see ModelInput): config.json, generation_config.json
 * (optional), tokenizer.json (+ tokenizer_config.json), and single or sharded safetensors in float32,
 * float16 or bfloat16. Weights are widened to float32 in the backend's arena. `onProgress` reports bytes
 * per file; `signal` aborts (the promise rejects with its reason, and nothing stays allocated). Throws
 * ModelLoadError naming the file for anything missing or malformed.
 */
export async function loadModel(input: ModelInput, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  if (options.backend === 'webgpu' || options.backendInstance?.name === 'webgpu') {
    // the WGSL kernels exist (createBackend('webgpu').gpu) but the forward pass and the cache are CPU-side
    throw new ModelLoadError("the Llama runtime does not run on the 'webgpu' backend yet (its kernels do: createBackend('webgpu').gpu); use 'wasm' or 'auto'")
  }
  return loadModelFrom(openSource(input, options), options)
}

/** Loads from an opened source and closes it (whatever happens). */
export async function loadModelFrom(source: ModelFileSource, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  try {
    // bad options fail before any file is read
    checkLoadOptions(options)
    throwIfAborted(options.signal)
    const config = parseConfig(await readJsonFile(source, 'config.json', true), await readJsonFile(source, 'generation_config.json', false))
    const tokenizer = new HfTokenizerAdapter(await readJsonFile(source, 'tokenizer.json', true), (await readJsonFile(source, 'tokenizer_config.json', false)) ?? {})
    if (tokenizer.vocabSize > config.vocab) {
      throw new ModelLoadError(`${source.describe('')}: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${config.vocab}`)
    }
    const owned = options.backendInstance === undefined
    const backend =
      options.backendInstance ??
      (await createBackend(options.backend ?? 'auto', { ...options.wasm, threads: options.threads ?? hardwareThreads(), threadsOptional: options.threads === undefined, spawnWorker: options.spawnWorker }))
    try {
      const weights = await loadWeights(source, config, backend.heap)
      try {
        throwIfAborted(options.signal)
        return new LlamaModel(backend, config, tokenizer, weights, options.chunk, options.kvDtype, owned)
      } catch (e) {
        for (const p of weights.allocations) backend.heap.release(p)
        throw e
      }
    } catch (e) {
      if (owned) backend.close?.()
      throw e
    }
  } finally {
    await source.close()
  }
}

const BACKENDS: readonly BackendName[] = ['wasm', 'reference', 'webgpu', 'auto']

export function checkLoadOptions(options: LoadOptions): void {
  if (options.backend !== undefined && !BACKENDS.includes(options.backend))
    throw new ModelInputError(`loadModel: unknown backend ${JSON.stringify(options.backend)}; expected one of ${BACKENDS.map((b) => `'${b}'`).join(', ')}`)
  if (options.chunk !== undefined) checkChunk(options.chunk)
  if (options.kvDtype !== undefined) checkKvDtype(options.kvDtype, 'loadModel')
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1 && options.threads <= 256))
    throw new ModelInputError(`loadModel: threads must be an integer in [1, 256], got ${options.threads}`)
}

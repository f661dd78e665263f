import { createBackend } from '../backend/index.js'
import { hardwareThreads, MAX_THREADS } from '../backend/threads/spawn.js'
import { wasmOptionsProblem } from '../backend/wasm/options.js'
import type { Backend } from '../backend/backend.js'
import { parseConfig } from './config.js'
import { ModelInputError, ModelLoadError, optionNamesProblem, shownValue } from './errors.js'
import { readJsonFile } from './json-file.js'
import { checkChunk, checkKvDtype, LlamaModel } from './model.js'
import { FilesSource, isFileSource, isUrl, UrlSource, type ModelFileSource, type ModelFiles } from './source.js'
import { throwIfAborted } from './abort.js'
import { HfTokenizerAdapter } from './tokenizer.js'
import type { LoadOptions } from './types.js'
import { BACKEND_NAMES } from '../backend/backend.js'
import { loadWeights } from './weights.js'
import { GgufFile } from './gguf.js'
import { ggufConfig } from './gguf-config.js'
import { ggufTokenizerJson } from './gguf-tokenizer.js'
import { loadGgufWeights } from './gguf-weights.js'

/**
 * Where a model comes from, in any runtime: a base URL (a `URL`, or a string starting with a scheme such
 * as `https://`; a Hugging Face hub `https://huggingface.co/ORG/NAME/resolve/main/` works), files the user
 * picked (name -> Blob/ArrayBuffer, or an `<input type=file>`'s FileList), or any ModelFileSource. A
 * folder path needs the file system: `loadModel` from `kvkit/node` takes those too.
 *
 * GGUF files (llama.cpp's format) load too: a URL whose path ends in `.gguf`, the file's bytes (an
 * ArrayBuffer, typed array or Blob), or picked files with one `*.gguf` among them (a `tokenizer.json`
 * beside it is used when present, else the tokenizer in the GGUF metadata).
 */
export type ModelInput = string | URL | ModelFiles | ModelFileSource | ArrayBuffer | ArrayBufferView | Blob

/** A source, and the name of the GGUF file in it when the model is one (else a Hugging Face folder). */
export interface OpenedSource {
  source: ModelFileSource
  gguf?: string
}

const GGUF_NAME = /\.gguf$/i

/** Turns what the user gave into a source; folder and file paths are for kvkit/node. */
export function openSource(input: ModelInput, options: LoadOptions): OpenedSource {
  const opts = { onProgress: options.onProgress, signal: options.signal }
  if (typeof input === 'string' && isUrl(input)) input = new URL(input)
  if (input instanceof URL) {
    const file = input.pathname.split('/').pop() ?? ''
    if (GGUF_NAME.test(file)) return { source: new UrlSource(new URL('.', input), opts), gguf: file }
    return { source: new UrlSource(input, opts) }
  }
  if (typeof input === 'string') {
    throw new ModelLoadError(`loadModel: ${JSON.stringify(input)} is not a URL; load a model folder with loadModel from 'kvkit/node' (Node, Bun, Deno), which takes .gguf file paths too`)
  }
  if (isFileSource(input)) return { source: input }
  if (!input || typeof input !== 'object') throw new ModelLoadError(`loadModel: expected a URL, a map of files, GGUF bytes or a ModelFileSource, got ${input === null ? 'null' : typeof input}`)
  if (input instanceof ArrayBuffer || ArrayBuffer.isView(input) || (typeof Blob !== 'undefined' && input instanceof Blob)) {
    // one file's bytes: a GGUF file (a picked File keeps its own name)
    const name = typeof File !== 'undefined' && input instanceof File && GGUF_NAME.test(input.name) ? input.name : 'model.gguf'
    return { source: new FilesSource({ [name]: input }, opts), gguf: name }
  }
  const source = new FilesSource(input as ModelFiles, opts)
  const ggufs = source.names().filter((n) => GGUF_NAME.test(n))
  if (ggufs.length > 1) throw new ModelLoadError(`loadModel: the files hold ${ggufs.length} GGUF files (${ggufs.join(', ')}); pick one`)
  return { source, gguf: ggufs[0] }
}

/**
 * Loads a Hugging Face model folder from `input` (see ModelInput): config.json, generation_config.json
 * (optional), tokenizer.json (+ tokenizer_config.json), and single or sharded safetensors in float32,
 * float16 or bfloat16. Weights are widened to float32 in the backend's arena. `onProgress` reports bytes
 * per file; `signal` aborts (the promise rejects with its reason, and nothing stays allocated). Throws
 * ModelLoadError naming the file for anything missing or malformed.
 */
export async function loadModel(input: ModelInput, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  const { source, gguf } = openSource(input, options)
  return loadModelFrom(source, options, gguf)
}

/**
 * Loads from an opened source and closes it (whatever happens): the Hugging Face folder it holds, or
 * its GGUF file named `gguf`.
 */
export async function loadModelFrom(source: ModelFileSource, options: LoadOptions & { backendInstance?: Backend } = {}, gguf?: string): Promise<LlamaModel> {
  try {
    // bad options fail before any file is read
    checkLoadOptions(options)
    throwIfAborted(options.signal, 'model loading')
    const file = gguf === undefined ? undefined : await GgufFile.open(source, gguf)
    const parsed = file
      ? ggufConfig(file.metadata, file.tensors, file.path)
      : parseConfig(await readJsonFile(source, 'config.json', true), await readJsonFile(source, 'generation_config.json', false))
    const config = options.contextLimit === undefined ? parsed : { ...parsed, maxPositions: options.contextLimit, trainedPositions: parsed.maxPositions }
    // a GGUF file's own tokenizer, unless a tokenizer.json lies beside it
    const tokenizerJson = await readJsonFile(source, 'tokenizer.json', !file)
    const tokenizer = new HfTokenizerAdapter(tokenizerJson ?? ggufTokenizerJson(file!.metadata, file!.path), (await readJsonFile(source, 'tokenizer_config.json', false)) ?? {})
    if (tokenizer.vocabSize > config.vocab) {
      throw new ModelLoadError(`${source.describe(gguf ?? '')}: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${config.vocab}`)
    }
    throwIfAborted(options.signal, 'model loading')
    const owned = options.backendInstance === undefined
    const backend =
      options.backendInstance ??
      (await createBackend(options.backend ?? 'auto', { ...options.wasm, threads: options.threads ?? Math.min(hardwareThreads(), MAX_THREADS), threadsOptional: options.threads === undefined, spawnWorker: options.spawnWorker }))
    try {
      const weights = file ? await loadGgufWeights(file, config, backend.heap) : await loadWeights(source, config, backend.heap)
      try {
        throwIfAborted(options.signal, 'model loading')
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


/** every option loadModel takes; the record's type makes a new LoadOptions field fail to compile until listed */
const LOAD_OPTION_SET: Record<keyof LoadOptions | 'backendInstance', true> = {
  backend: true, chunk: true, onProgress: true, signal: true, wasm: true, contextLimit: true, kvDtype: true, threads: true, spawnWorker: true, backendInstance: true,
}
// backendInstance is internal: accepted, not offered in messages
const LOAD_OPTIONS_SHOWN = Object.keys(LOAD_OPTION_SET).filter((k) => k !== 'backendInstance')

export function checkLoadOptions(options: LoadOptions): void {
  const optionsProblem = optionNamesProblem(options, LOAD_OPTION_SET, LOAD_OPTIONS_SHOWN)
  if (optionsProblem !== undefined) throw new ModelInputError(`loadModel: ${optionsProblem}`)
  if (options.backend !== undefined && !BACKEND_NAMES.includes(options.backend))
    throw new ModelInputError(`loadModel: unknown backend ${JSON.stringify(options.backend)}; expected one of ${BACKEND_NAMES.map((b) => `'${b}'`).join(', ')}`)
  if (options.chunk !== undefined) checkChunk(options.chunk, 'loadModel')
  const wasmProblem = options.wasm === undefined ? undefined : wasmOptionsProblem(options.wasm)
  if (wasmProblem !== undefined) throw new ModelInputError(`loadModel: wasm: ${wasmProblem}`)
  const c = options.contextLimit
  if (c !== undefined && !(Number.isInteger(c) && c >= 2))
    throw new ModelInputError(`loadModel: contextLimit must be an integer of at least 2 tokens, got ${shownValue(c)}`)
  if (options.kvDtype !== undefined) checkKvDtype(options.kvDtype, 'loadModel')
  if (options.threads !== undefined && !(Number.isInteger(options.threads) && options.threads >= 1 && options.threads <= MAX_THREADS))
    throw new ModelInputError(`loadModel: threads must be an integer in [1, ${MAX_THREADS}], got ${shownValue(options.threads)}`)
  // a signal of another kind would be ignored (no abort), a progress callback that is not one would fail mid-load
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new ModelInputError('loadModel: signal must be an AbortSignal')
  if (options.onProgress !== undefined && typeof options.onProgress !== 'function')
    throw new ModelInputError(`loadModel: onProgress must be a function, got ${typeof options.onProgress}`)
}

import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createBackend } from '../backend/index.js'
import type { Backend } from '../backend/backend.js'
import { parseConfig } from './config.js'
import { ModelLoadError } from './errors.js'
import { LlamaModel } from './model.js'
import { HfTokenizerAdapter } from './tokenizer.js'
import type { LoadOptions } from './types.js'
import { loadWeights } from './weights.js'

/** Small JSON files only: a config of many megabytes is not a config. */
const MAX_JSON_BYTES = 64 * 1024 * 1024

function readJson(path: string, required: boolean): unknown {
  if (!existsSync(path)) {
    if (required) throw new ModelLoadError(`missing file: ${path}`)
    return undefined
  }
  const size = statSync(path).size
  if (size > MAX_JSON_BYTES) throw new ModelLoadError(`${path}: ${size} bytes is above the ${MAX_JSON_BYTES}-byte limit for a JSON file`)
  try {
    return JSON.parse(readFileSync(path, 'utf8'))
  } catch (e) {
    throw new ModelLoadError(`${path}: not valid JSON (${(e as Error).message})`)
  }
}

/**
 * Loads a Hugging Face model folder: config.json, generation_config.json (optional), tokenizer.json
 * (+ tokenizer_config.json), and single or sharded safetensors in float32, float16 or bfloat16.
 * Weights are widened to float32 in the backend's arena. Pass `backend` ('wasm', 'reference', 'auto')
 * or, for sharing an arena, an existing Backend object as `backendInstance`.
 */
export async function loadModel(dir: string, options: LoadOptions & { backendInstance?: Backend } = {}): Promise<LlamaModel> {
  if (options.backend === 'webgpu' || options.backendInstance?.name === 'webgpu') {
    // the WGSL kernels exist (createBackend('webgpu').gpu) but the forward pass and the cache are CPU-side
    throw new ModelLoadError("the Llama runtime does not run on the 'webgpu' backend yet (its kernels do: createBackend('webgpu').gpu); use 'wasm' or 'auto'")
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelLoadError(`model folder not found: ${dir}`)
  const config = parseConfig(readJson(join(dir, 'config.json'), true), readJson(join(dir, 'generation_config.json'), false))
  const tokenizer = new HfTokenizerAdapter(readJson(join(dir, 'tokenizer.json'), true), readJson(join(dir, 'tokenizer_config.json'), false) ?? {})
  if (tokenizer.vocabSize > config.vocab) {
    throw new ModelLoadError(`${dir}: the tokenizer has ${tokenizer.vocabSize} tokens, more than the model's vocab_size ${config.vocab}`)
  }
  const backend = options.backendInstance ?? (await createBackend(options.backend ?? 'auto'))
  const weights = loadWeights(dir, config, backend.heap)
  try {
    return new LlamaModel(backend, config, tokenizer, weights, options.chunk)
  } catch (e) {
    for (const p of weights.allocations) backend.heap.release(p)
    throw e
  }
}

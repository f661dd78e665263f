import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { ModelShape } from '../policies/types.js'
import { shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'

/**
 * What the harness checks before any worker loads weights: the folder exists, its config.json reads,
 * the context limit and the attention shape (policy options are validated against it). Reading these
 * few fields here lets a bad argument fail in milliseconds with one line, in the main thread.
 */
export interface ModelFacts {
  dir: string
  maxPositions: number
  /** token ids are in [0, vocab) */
  vocab: number
  shape: ModelShape
  /** a masked diffusion LM (Dream): decoded by iterative unmasking, its "policies" the decoding caches */
  diffusion: boolean
}

/** @throws EvalArgumentError naming the folder or config.json and what is wrong with it */
export function readModelFacts(dir: string): ModelFacts {
  if (typeof dir !== 'string' || dir === '') throw new EvalArgumentError(`model must be a model folder path, got ${shownValue(dir)}`)
  if (!existsSync(dir)) throw new EvalArgumentError(`model folder not found: ${dir}`)
  // a .gguf file (which kvkit/node's loadModel reads) was "model folder not found", as if it were not there
  if (!statSync(dir).isDirectory()) throw new EvalArgumentError(`model ${dir} is a file, not a model folder: this reads a Hugging Face model folder (config.json, tokenizer.json, the safetensors weights)`)
  const file = join(dir, 'config.json')
  if (!existsSync(file)) throw new EvalArgumentError(`model folder ${dir} has no config.json`)
  let cfg: Record<string, unknown>
  try {
    cfg = JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    throw new EvalArgumentError(`cannot read ${file}: ${(e as Error).message}`)
  }
  const int = (key: string): number => {
    const v = cfg[key]
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new EvalArgumentError(`${file}: ${key} is ${JSON.stringify(v)}, expected a positive integer`)
    return v
  }
  const qHeads = int('num_attention_heads')
  const kvHeads = cfg.num_key_value_heads === undefined ? qHeads : int('num_key_value_heads')
  const headDim = cfg.head_dim === undefined ? int('hidden_size') / qHeads : int('head_dim')
  return {
    dir,
    maxPositions: int('max_position_embeddings'),
    vocab: int('vocab_size'),
    shape: { layers: int('num_hidden_layers'), qHeads, kvHeads, headDim, group: qHeads / kvHeads, ...(Number.isInteger(cfg.hidden_size) && (cfg.hidden_size as number) > 0 ? { hidden: cfg.hidden_size as number } : {}) },
    diffusion: Array.isArray(cfg.architectures) && cfg.architectures[0] === 'DreamModel',
  }
}

import { parseConfig } from './config.js'
import { ModelLoadError } from './errors.js'
import type { GgufMetadata, GgufTensor } from './gguf.js'
import type { ModelConfig } from './types.js'

/**
 * A GGUF file's metadata as kvkit's ModelConfig, through the same normalization as a Hugging Face
 * config.json (parseConfig). Keys are llama.cpp's (gguf-py/gguf/constants.py `Keys`): `{arch}.block_count`,
 * `{arch}.attention.head_count`, ... Every bad value is a ModelLoadError naming the key and the value.
 */

/** GGUF `general.architecture` values whose forward pass is kvkit's Llama one, as HF architectures. */
export const GGUF_ARCHITECTURES: Record<string, string> = { llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM' }

function value(md: GgufMetadata, key: string): unknown {
  const v = md[key]
  return typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v) : v
}

function int(md: GgufMetadata, key: string, where: string, fallback?: number): number {
  const v = value(md, key) ?? fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 1 << 24) {
    throw new ModelLoadError(`${where}: ${key} must be a positive integer, got ${describe(md[key])}`)
  }
  return v
}

function positive(md: GgufMetadata, key: string, where: string, fallback: number): number {
  const v = value(md, key) ?? fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ModelLoadError(`${where}: ${key} must be a positive number, got ${describe(md[key])}`)
  return v
}

function describe(v: unknown): string {
  if (typeof v === 'bigint') return `${v}`
  if (Array.isArray(v)) return `an array of ${v.length}`
  return v === undefined ? 'nothing (missing)' : JSON.stringify(v)
}

/** A token id key: absent (undefined) or an integer in [0, vocab). */
function tokenId(md: GgufMetadata, key: string, vocab: number, where: string): number | undefined {
  const v = value(md, key)
  if (v === undefined) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab) throw new ModelLoadError(`${where}: ${key} = ${describe(md[key])} is not a token id in [0, ${vocab})`)
  return v
}

export function ggufConfig(md: GgufMetadata, tensors: Map<string, GgufTensor>, where: string): ModelConfig {
  const arch = md['general.architecture']
  if (typeof arch !== 'string' || !(arch in GGUF_ARCHITECTURES)) {
    throw new ModelLoadError(`${where}: general.architecture ${describe(arch)} is not supported; supported: ${Object.keys(GGUF_ARCHITECTURES).join(', ')}`)
  }
  const a = (k: string) => `${arch}.${k}`
  const hidden = int(md, a('embedding_length'), where)
  const qHeads = int(md, a('attention.head_count'), where)
  const headDim = int(md, a('attention.key_length'), where, Math.floor(hidden / qHeads))
  const valueDim = int(md, a('attention.value_length'), where, headDim)
  if (valueDim !== headDim) throw new ModelLoadError(`${where}: ${a('attention.value_length')} ${valueDim} differs from the key length ${headDim}; kvkit needs them equal`)
  const ropeDims = int(md, a('rope.dimension_count'), where, headDim)
  if (ropeDims !== headDim) throw new ModelLoadError(`${where}: ${a('rope.dimension_count')} ${ropeDims} rotates part of a ${headDim}-wide head; kvkit rotates whole heads`)
  const scaling = md[a('rope.scaling.type')]
  if (scaling !== undefined && scaling !== 'none') throw new ModelLoadError(`${where}: ${a('rope.scaling.type')} ${describe(scaling)} is not supported`)
  // llama3-style RoPE scaling arrives as per-frequency factors in a tensor rather than as keys
  if (tensors.has('rope_freqs.weight')) throw new ModelLoadError(`${where}: rope_freqs.weight (llama3 RoPE scaling) is not supported in GGUF files yet; load the Hugging Face folder`)
  const tokens = md['tokenizer.ggml.tokens']
  const vocab = int(md, a('vocab_size'), where, Array.isArray(tokens) ? tokens.length : tensors.get('token_embd.weight')?.shape[0])
  const eos = tokenId(md, 'tokenizer.ggml.eos_token_id', vocab, where)
  const eot = tokenId(md, 'tokenizer.ggml.eot_token_id', vocab, where)
  const hf = {
    architectures: [GGUF_ARCHITECTURES[arch]],
    hidden_size: hidden,
    num_hidden_layers: int(md, a('block_count'), where),
    intermediate_size: int(md, a('feed_forward_length'), where),
    num_attention_heads: qHeads,
    num_key_value_heads: int(md, a('attention.head_count_kv'), where, qHeads),
    head_dim: headDim,
    vocab_size: vocab,
    rms_norm_eps: positive(md, a('attention.layer_norm_rms_epsilon'), where, 1e-6),
    rope_theta: positive(md, a('rope.freq_base'), where, 10000),
    max_position_embeddings: int(md, a('context_length'), where),
    tie_word_embeddings: !tensors.has('output.weight'),
    attention_bias: tensors.has('blk.0.attn_q.bias'),
    bos_token_id: tokenId(md, 'tokenizer.ggml.bos_token_id', vocab, where),
    eos_token_id: [...new Set([eos, eot].filter((x) => x !== undefined))],
    pad_token_id: tokenId(md, 'tokenizer.ggml.padding_token_id', vocab, where),
  }
  try {
    return parseConfig(hf)
  } catch (e) {
    throw new ModelLoadError(`${where}: ${(e as Error).message.replace(/^config(\.json)?: /, '')} (from the GGUF metadata)`)
  }
}

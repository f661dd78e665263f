import type { ModelConfig } from './types.js'
import { ModelLoadError } from './errors.js'

/** Architectures whose forward pass is the Llama one (SmolLM ships as LlamaForCausalLM). */
const ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  // Dream (HKUNLP/Dream): a masked diffusion LM on Qwen2's weights, attention without the causal mask
  DreamModel: 'qwen2',
}

/** Masked diffusion LMs: decoded by iterative unmasking (LlamaModel.diffusionGenerate), never causally. */
const DIFFUSION_ARCHITECTURES = new Set(['DreamModel'])

type Json = Record<string, unknown>

function int(cfg: Json, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0 || v > 1 << 24) {
    throw new ModelLoadError(`config.json: ${key} must be a positive integer, got ${JSON.stringify(cfg[key])}`)
  }
  return v
}
function num(v: unknown, what: string, fallback: number): number {
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ModelLoadError(`config.json: ${what} must be a positive number, got ${JSON.stringify(v)}`)
  return v
}
/** a special token id: absent (null) or an integer id inside the vocabulary; anything else is a load error */
function tokenId(v: unknown, what: string, vocab: number): number | null {
  if (v === undefined || v === null) return null
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab)
    throw new ModelLoadError(`config: ${what} = ${JSON.stringify(v)} is not a token id in [0, ${vocab}) (vocab_size)`)
  return v
}

/**
 * Normalizes a Hugging Face config.json (Llama, Mistral, Qwen2, SmolLM): rope_theta at the top level or
 * under rope_parameters (newer Transformers), llama3 RoPE scaling, Qwen2's Q/K/V biases.
 */
export function parseConfig(raw: unknown, generation?: unknown): ModelConfig {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new ModelLoadError('config.json: expected a JSON object')
  const cfg = raw as Json
  const archs = cfg.architectures
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined
  if (!arch || !(arch in ARCHITECTURES)) {
    throw new ModelLoadError(`config.json: unsupported architecture ${JSON.stringify(archs ?? cfg.model_type)}; supported: ${Object.keys(ARCHITECTURES).join(', ')}`)
  }
  const act = cfg.hidden_act ?? 'silu'
  if (act !== 'silu') throw new ModelLoadError(`config.json: hidden_act ${JSON.stringify(act)} is not supported (only silu)`)
  const hidden = int(cfg, 'hidden_size')
  const qHeads = int(cfg, 'num_attention_heads')
  const kvHeads = int(cfg, 'num_key_value_heads', qHeads)
  const headDim = int(cfg, 'head_dim', Math.floor(hidden / qHeads))
  if (qHeads % kvHeads !== 0) throw new ModelLoadError(`config.json: num_attention_heads ${qHeads} is not a multiple of num_key_value_heads ${kvHeads}`)
  if (headDim % 2 !== 0) throw new ModelLoadError(`config.json: head_dim ${headDim} must be even for RoPE`)
  const rp = (cfg.rope_parameters ?? null) as Json | null
  const scaling = (cfg.rope_scaling ?? rp ?? null) as Json | null
  const ropeTheta = num(cfg.rope_theta ?? rp?.rope_theta, 'rope_theta', 10000)
  let ropeScaling: ModelConfig['ropeScaling'] = null
  const type = scaling ? (scaling.rope_type ?? scaling.type ?? 'default') : 'default'
  if (type === 'llama3') {
    ropeScaling = {
      type: 'llama3',
      factor: num(scaling!.factor, 'rope_scaling.factor', NaN),
      lowFreqFactor: num(scaling!.low_freq_factor, 'rope_scaling.low_freq_factor', NaN),
      highFreqFactor: num(scaling!.high_freq_factor, 'rope_scaling.high_freq_factor', NaN),
      originalMaxPositions: num(scaling!.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings', NaN),
    }
    const keys: Record<string, string> = { factor: 'factor', lowFreqFactor: 'low_freq_factor', highFreqFactor: 'high_freq_factor', originalMaxPositions: 'original_max_position_embeddings' }
    for (const [k, v] of Object.entries(ropeScaling)) {
      if (typeof v === 'number' && Number.isNaN(v)) throw new ModelLoadError(`config.json: llama3 rope scaling lacks ${keys[k]}`)
    }
  } else if (type !== 'default') {
    throw new ModelLoadError(`config.json: RoPE scaling type ${JSON.stringify(type)} is not supported (default or llama3)`)
  }
  const gen = (generation && typeof generation === 'object' ? generation : {}) as Json
  const eosRaw = gen.eos_token_id ?? cfg.eos_token_id
  const vocab = int(cfg, 'vocab_size')
  const eosTokenIds = (Array.isArray(eosRaw) ? eosRaw : [eosRaw]).map((v, i) => tokenId(v, Array.isArray(eosRaw) ? `eos_token_id[${i}]` : 'eos_token_id', vocab)).filter((x): x is number => x !== null)
  const modelType = ARCHITECTURES[arch]
  const diffusion = DIFFUSION_ARCHITECTURES.has(arch) ? diffusionConfig(cfg, arch, vocab) : undefined
  return {
    architecture: arch,
    layers: int(cfg, 'num_hidden_layers'),
    qHeads,
    kvHeads,
    headDim,
    group: qHeads / kvHeads,
    hidden,
    intermediate: int(cfg, 'intermediate_size'),
    vocab: int(cfg, 'vocab_size'),
    rmsNormEps: num(cfg.rms_norm_eps, 'rms_norm_eps', 1e-6),
    ropeTheta,
    ropeScaling,
    maxPositions: int(cfg, 'max_position_embeddings', 4096),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    // Qwen2 always has Q/K/V biases; Llama-style configs say so with attention_bias
    attentionBias: modelType === 'qwen2' ? cfg.attention_bias !== false : cfg.attention_bias === true,
    bosTokenId: tokenId(gen.bos_token_id ?? cfg.bos_token_id, 'bos_token_id', vocab),
    eosTokenIds,
    padTokenId: tokenId(gen.pad_token_id ?? cfg.pad_token_id, 'pad_token_id', vocab),
    ...(diffusion ? { diffusion } : {}),
  }
}

/**
 * A masked diffusion LM's decoding facts: its mask token (required: the answer starts as masks) and
 * Dream's logit shift (Dream's generation reads the prediction for position j from the logits of
 * position j - 1, as its training kept the causal LM's next-token head).
 */
function diffusionConfig(cfg: Json, arch: string, vocab: number): NonNullable<ModelConfig['diffusion']> {
  const raw = cfg.mask_token_id
  if (raw === undefined || raw === null) throw new ModelLoadError(`config.json: ${arch} is a masked diffusion LM and needs mask_token_id, which is missing`)
  const maskTokenId = tokenId(raw, 'mask_token_id', vocab)!
  return { maskTokenId, logitShift: 1 }
}

/**
 * RoPE inverse frequencies in float32, as Transformers computes them (a checkpoint stores none: every
 * loader derives them from rope_theta), with llama3 scaling when configured.
 */
export function ropeInvFreq(cfg: ModelConfig): Float32Array {
  const d = cfg.headDim
  const inv = new Float32Array(d / 2)
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.fround(Math.pow(cfg.ropeTheta, Math.fround((2 * i) / d)))
  const s = cfg.ropeScaling
  if (s) {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor
    const highWavelen = s.originalMaxPositions / s.highFreqFactor
    for (let i = 0; i < inv.length; i++) {
      const f = inv[i]
      const wavelen = (2 * Math.PI) / f
      if (wavelen < highWavelen) continue
      if (wavelen > lowWavelen) inv[i] = f / s.factor
      else {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
        inv[i] = (1 - smooth) * (f / s.factor) + smooth * f
      }
    }
  }
  return inv
}

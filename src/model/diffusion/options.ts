import { ContextLengthError, contextLimitText, ModelInputError, shownValue } from '../errors.js'
import type { ModelConfig } from '../types.js'

/**
 * Elastic-Cache's settings (Nguyen-Tri, Ranjan and Shen 2025, "Attention Is All You Need for KV Cache in
 * Diffusion LLMs", arXiv 2510.14973, Algorithm 1; defaults from its released evaluation scripts).
 * Build it with `elasticCache({...})`, which checks every field.
 */
export interface ElasticCacheConfig {
  readonly kind: 'elastic-cache'
  /**
   * Attention-drift threshold (the paper's gamma): at the first layer where the cosine similarity between
   * the most-attended token's attention now and at the step its query was cached is at most gamma, the
   * K/V of every token are recomputed from that layer to the last (the paper's figure starts at the next
   * layer; starting at the drifting one costs one layer more and makes gamma 1 exactly full
   * recomputation, layer 0's inputs being the tokens' embeddings). In [0, 1]; 1 refreshes every layer
   * every step, 0 never refreshes (only the active tokens are computed). Default 0.9.
   */
  readonly gamma: number
  /**
   * The sliding window (the paper's window_length), in tokens: the first `windowLength` still-masked
   * positions are queried every step; masked positions beyond it keep their cached K/V (block-wise
   * caching of far MASK tokens). At least the decode's blockLength. Default: the decode's blockLength.
   */
  readonly windowLength?: number
  /** most-attended tokens tracked per layer for the drift test (the paper's track_num). Default 1. */
  readonly trackNum: number
  /** cache masked tokens beyond the window (the paper's block_caching); false queries every masked token each step. Default true. */
  readonly blockCaching: boolean
  /**
   * Where a refresh starts: 'drifting-layer' (default; the wording, and gamma 1 is then exactly
   * full recomputation) or 'next-layer' (the paper's Figure 2 and released code: start_reset = l + 1,
   * the drifting layer's other tokens kept as cached).
   */
  readonly refreshFrom: 'drifting-layer' | 'next-layer'
}

const shown = shownValue

/** Elastic-Cache settings with the paper's defaults (gamma 0.9, trackNum 1, block caching on, refresh from the drifting layer); ModelInputError for a bad field. */
export function elasticCache(o: Partial<Omit<ElasticCacheConfig, 'kind'>> = {}): ElasticCacheConfig {
  if (!o || typeof o !== 'object') throw new ModelInputError(`elasticCache: expected an options object, got ${JSON.stringify(o)}`)
  const known = ['gamma', 'windowLength', 'trackNum', 'blockCaching', 'refreshFrom']
  for (const k of Object.keys(o)) if (!known.includes(k)) throw new ModelInputError(`elasticCache: unknown option ${JSON.stringify(k)} (options: ${known.join(', ')})`)
  const gamma = o.gamma ?? 0.9
  if (typeof gamma !== 'number' || !(gamma >= 0 && gamma <= 1)) throw new ModelInputError(`elasticCache: gamma must be a number in [0, 1], got ${shown(o.gamma)}`)
  const trackNum = o.trackNum ?? 1
  if (!(Number.isInteger(trackNum) && trackNum >= 1)) throw new ModelInputError(`elasticCache: trackNum must be a positive integer, got ${shown(o.trackNum)}`)
  if (o.windowLength !== undefined && !(Number.isInteger(o.windowLength) && o.windowLength >= 1))
    throw new ModelInputError(`elasticCache: windowLength must be a positive integer, got ${shown(o.windowLength)}`)
  const blockCaching = o.blockCaching ?? true
  if (typeof blockCaching !== 'boolean') throw new ModelInputError(`elasticCache: blockCaching must be a boolean, got ${JSON.stringify(o.blockCaching)}`)
  const refreshFrom = o.refreshFrom ?? 'drifting-layer'
  if (refreshFrom !== 'drifting-layer' && refreshFrom !== 'next-layer') throw new ModelInputError(`elasticCache: refreshFrom must be 'drifting-layer' or 'next-layer', got ${JSON.stringify(o.refreshFrom)}`)
  return Object.freeze({ kind: 'elastic-cache', gamma, trackNum, blockCaching, refreshFrom, ...(o.windowLength !== undefined ? { windowLength: o.windowLength } : {}) })
}

/** What diffusionGenerate is told; every field is checked before any work (ModelInputError, ContextLengthError). */
export interface DiffusionGenerateOptions {
  /** answer length in tokens: that many mask tokens follow the prompt (LLaDA's gen_length, Dream's max_new_tokens) */
  genLength: number
  /** semi-autoregressive block length (LLaDA's block_length): a divisor of genLength; default genLength (one block) */
  blockLength?: number
  /**
   * denoising steps in all (LLaDA's and Dream's steps), a multiple of the number of blocks, each block
   * getting steps / blocks of them, at most blockLength (so that every step unmasks a token); default
   * genLength (one token a step)
   */
  steps?: number
  /** which masked tokens to unmask: LLaDA's 'low_confidence' (the most probable argmax first), the only one */
  remasking?: 'low_confidence'
  /** 'none' (default): every token through every layer at every step; or Elastic-Cache (`elasticCache({...})`) */
  cache?: 'none' | ElasticCacheConfig
  /**
   * Stop at EOS: once a finished block holds an end-of-sequence token, the blocks after it are not
   * decoded (their positions stay masks in `tokens`). The answer ends at the first EOS either way.
   * Default false (every block is decoded, as LLaDA and Dream do).
   */
  stopAtEos?: boolean
  /** aborts between steps: the promise rejects with the signal's reason */
  signal?: AbortSignal
  /** called after each step with the positions unmasked (indices into the answer) and their tokens */
  onStep?: (step: DiffusionStep) => void
}

export interface DiffusionStep {
  /** 0-based step over the whole decode */
  step: number
  block: number
  /** answer indices (0 = the first position after the prompt) unmasked at this step, ascending */
  positions: number[]
  tokens: number[]
}

/** Options with defaults filled in, as the decoder runs them. */
export interface CheckedDiffusionOptions {
  genLength: number
  blockLength: number
  steps: number
  blocks: number
  stepsPerBlock: number
  cache: 'none' | ElasticCacheConfig
  windowLength: number
  stopAtEos: boolean
  signal?: AbortSignal
  onStep?: (step: DiffusionStep) => void
}

const int = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v)

/** the refusal of a prompt of `tokens` tokens (a count, or 'at least N' from the tokenizer's bound) that leaves no room for genLength `G` */
export function diffusionContextError(cfg: ModelConfig, tokens: string, G: number): ContextLengthError {
  return new ContextLengthError(`diffusionGenerate: a prompt of ${tokens} tokens and genLength ${G} exceed the model's context (${contextLimitText(cfg)})`)
}

/** Checks the prompt and options against the model (every error before any work) and fills the defaults. */
export function checkDiffusionOptions(cfg: ModelConfig, prompt: readonly number[], o: DiffusionGenerateOptions): CheckedDiffusionOptions {
  const fail = (m: string): never => { throw new ModelInputError(`diffusionGenerate: ${m}`) }
  if (!o || typeof o !== 'object') fail(`options must be an object with genLength, got ${JSON.stringify(o)}`)
  const known = ['genLength', 'blockLength', 'steps', 'remasking', 'cache', 'stopAtEos', 'signal', 'onStep']
  for (const k of Object.keys(o)) if (!known.includes(k)) fail(`unknown option ${JSON.stringify(k)} (options: ${known.join(', ')})`)
  const mask = cfg.diffusion!.maskTokenId
  const i = prompt.indexOf(mask)
  if (i >= 0) fail(`prompt[${i}] is the mask token ${mask}; the prompt must be decoded text (the answer's masks are added)`)
  if (prompt.length < cfg.diffusion!.logitShift) fail('the prompt must hold at least one token (the first answer token is predicted from the last prompt position)')
  const G = o.genLength
  if (!(int(G) && G >= 1)) fail(`genLength must be a positive integer, got ${shown(G)}`)
  const B = o.blockLength ?? G
  if (!(int(B) && B >= 1 && B <= G)) fail(`blockLength must be an integer in [1, genLength = ${G}], got ${shown(o.blockLength)}`)
  if (G % B !== 0) fail(`genLength ${G} is not a multiple of blockLength ${B}`)
  const blocks = G / B
  const steps = o.steps ?? G
  if (!(int(steps) && steps >= 1)) fail(`steps must be a positive integer, got ${shown(o.steps)}`)
  if (steps % blocks !== 0) fail(`steps ${steps} is not a multiple of the number of blocks ${blocks} (genLength ${G} / blockLength ${B})`)
  if (steps / blocks > B) fail(`steps ${steps} give ${steps / blocks} steps per block, more than blockLength ${B}: some steps would unmask nothing`)
  if (o.remasking !== undefined && o.remasking !== 'low_confidence') fail(`remasking must be 'low_confidence', got ${JSON.stringify(o.remasking)}`)
  const cache = o.cache ?? 'none'
  if (cache !== 'none' && (typeof cache !== 'object' || cache === null || (cache as ElasticCacheConfig).kind !== 'elastic-cache'))
    fail(`cache must be 'none' or elasticCache({...}), got ${JSON.stringify(cache)}`)
  const windowLength = cache === 'none' ? B : cache.windowLength ?? B
  if (windowLength < B) fail(`elasticCache windowLength ${windowLength} is shorter than blockLength ${B}: the window must cover the block being decoded`)
  if (o.stopAtEos !== undefined && typeof o.stopAtEos !== 'boolean') fail(`stopAtEos must be a boolean, got ${JSON.stringify(o.stopAtEos)}`)
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) fail('signal must be an AbortSignal')
  if (o.onStep !== undefined && typeof o.onStep !== 'function') fail(`onStep must be a function, got ${typeof o.onStep}`)
  if (prompt.length + G > cfg.maxPositions) throw diffusionContextError(cfg, `${prompt.length}`, G)
  return { genLength: G, blockLength: B, steps, blocks, stepsPerBlock: steps / blocks, cache, windowLength, stopAtEos: o.stopAtEos ?? false, signal: o.signal, onStep: o.onStep }
}

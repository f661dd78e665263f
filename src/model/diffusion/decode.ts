import type { Backend } from '../../backend/backend.js'
import type { ModelConfig, Tokenizer } from '../types.js'
import type { Weights } from '../weights.js'
import { BidirectionalForward } from './forward.js'
import type { CheckedDiffusionOptions } from './options.js'
import { mostConfident, numTransferTokens, predict } from './schedule.js'

/** What Elastic-Cache (or full recomputation) did, for the speed and cost comparison. */
export interface DiffusionCacheStats {
  /** 'none': every token through every layer at every step; 'elastic-cache' */
  cache: 'none' | 'elastic-cache'
  /** per step: layers computed over every token (all layers at a full step; 0 when only active tokens ran) */
  layersRecomputed: number[]
  /** per step: token rows computed, summed over layers (full recomputation: tokens x layers) */
  tokensRecomputed: number[]
  /** steps that recomputed at least one layer over every token (the first step always does) */
  refreshSteps: number
  /** sum of tokensRecomputed over what full recomputation computes for the same steps (1 for 'none') */
  computeRatio: number
}

export interface DiffusionStats {
  promptTokens: number
  genLength: number
  /** denoising steps run (fewer than asked when stopAtEos ended the decode early) */
  steps: number
  /** wall time of the denoising steps (forward passes, selection, cache upkeep), ms */
  decodeMs: number
  msPerStep: number
  recompute: DiffusionCacheStats
  /** bytes of the K/V the decode kept (float32, every layer and token of prompt + answer) */
  kvBytes: number
}

/** The answer of a diffusion decode. */
export interface DiffusionResult {
  /** the answer's tokens up to (not including) the first end-of-sequence token */
  ids: number[]
  text: string
  /** every answer position [genLength] as decoded (the mask id where stopAtEos left it masked) */
  tokens: number[]
  /** 'eos': the answer holds an end-of-sequence token; 'length': it fills genLength */
  finishReason: 'eos' | 'length'
  stats: DiffusionStats
}

export interface DecodeContext {
  backend: Backend
  config: ModelConfig
  weights: Weights
  tokenizer: Tokenizer
  /** throws when the request was aborted or the model disposed (between steps) */
  check: () => void
  /** yields to the event loop between steps (other requests run there) */
  yieldTurn: () => Promise<void>
}

/**
 * Semi-autoregressive iterative unmasking (LLaDA's generate(), Dream's diffusion_generate): the prompt
 * followed by genLength masks, decoded block by block, each block over stepsPerBlock steps. A step runs
 * the bidirectional forward, takes the greedy token and its probability at every masked position of
 * the block (the logits of position j - logitShift), and unmasks the most confident ones, as many as
 * numTransferTokens schedules. With Elastic-Cache, a step computes only the active tokens (the window's
 * masked positions' rows, the tokens just unmasked and the tracked ones) and reuses every other K/V,
 * unless the drift test asks for a refresh from some layer on.
 */
export async function diffusionDecode(c: DecodeContext, prompt: readonly number[], o: CheckedDiffusionOptions): Promise<DiffusionResult> {
  const { config: cfg } = c
  const { maskTokenId: mask, logitShift: shift } = cfg.diffusion!
  const P = prompt.length
  const N = P + o.genLength
  const L = cfg.layers
  const seq = new Int32Array(N).fill(mask)
  seq.set(prompt)
  const masked = new Uint8Array(N).fill(1, P)
  const elastic = o.cache === 'none' ? null : o.cache
  const eos = new Set(cfg.eosTokenIds)
  const engine = new BidirectionalForward(c.backend, cfg, c.weights, N, o.blockLength, elastic !== null)
  const logits = new Float32Array(o.blockLength * cfg.vocab)
  const stats: DiffusionCacheStats = { cache: elastic ? 'elastic-cache' : 'none', layersRecomputed: [], tokensRecomputed: [], refreshSteps: 0, computeRatio: 1 }
  let track: Int32Array | null = null
  let fresh: number[] = []
  let step = 0
  let finishReason: DiffusionResult['finishReason'] = 'length'
  let decodeMs = 0
  try {
    for (let b = 0; b < o.blocks && !(o.stopAtEos && finishReason === 'eos'); b++) {
      const start = P + b * o.blockLength
      const end = start + o.blockLength
      const schedule = numTransferTokens(o.blockLength, o.stepsPerBlock)
      for (let s = 0; s < o.stepsPerBlock; s++, step++) {
        c.check()
        const t0 = performance.now()
        const active: number[] = []
        for (let j = start; j < end; j++) if (masked[j]) active.push(j)
        const plan = planRows(active, masked, start, shift, elastic ? { window: o.windowLength, blockCaching: elastic.blockCaching } : null, track, fresh)
        const out = engine.run(seq, {
          rows: plan.rows, tail: plan.tail, fullFrom: elastic && step > 0 ? L : 0,
          track: elastic && step > 0 ? track : null, gamma: elastic?.gamma ?? 0, trackNum: elastic?.trackNum ?? 0, refreshNext: elastic?.refreshFrom === 'next-layer',
          masked, logitRows: active.length, out: logits,
        })
        const preds = active.map((_, i) => predict(logits, i * cfg.vocab, cfg.vocab, mask))
        const picked = mostConfident(preds.map((p) => p.confidence), schedule[s])
        fresh = picked.map((i) => active[i])
        for (const i of picked) {
          seq[active[i]] = preds[i].token
          masked[active[i]] = 0
        }
        track = out.track
        stats.layersRecomputed.push(L - out.fullFrom)
        stats.tokensRecomputed.push(out.rows)
        if (out.fullFrom < L) stats.refreshSteps++
        decodeMs += performance.now() - t0
        o.onStep?.({ step, block: b, positions: fresh.map((p) => p - P), tokens: fresh.map((p) => seq[p]) })
        await c.yieldTurn()
      }
      for (let j = start; j < end; j++) if (eos.has(seq[j])) finishReason = 'eos'
    }
    const tokens = Array.from(seq.subarray(P))
    let stop = tokens.findIndex((t) => eos.has(t) || t === mask)
    if (stop < 0) stop = tokens.length
    const ids = tokens.slice(0, stop)
    const full = step * N * L
    stats.computeRatio = full > 0 ? stats.tokensRecomputed.reduce((a, x) => a + x, 0) / full : 1
    return {
      ids,
      text: c.tokenizer.decode(ids),
      tokens,
      finishReason,
      stats: {
        promptTokens: P, genLength: o.genLength, steps: step, decodeMs, msPerStep: decodeMs / Math.max(1, step),
        recompute: stats, kvBytes: engine.cache.bytes().total,
      },
    }
  } finally {
    engine.dispose()
  }
}

/**
 * The rows a step computes when layers are reused, in order, and how many of them (the last `tail`)
 * are the masked positions' query rows: position j's prediction is read from row j - shift. Elastic-
 * Cache queries the window's masked positions (the first `window` still masked; all masked ones
 * without block caching), the block's first; before them, the tokens unmasked last step and the
 * tracked ones. Without Elastic-Cache the tail is the block's masked rows alone.
 */
export function planRows(
  active: readonly number[], masked: Uint8Array, start: number, shift: number,
  elastic: { window: number; blockCaching: boolean } | null, track: Int32Array | null, fresh: readonly number[],
): { rows: Int32Array; tail: number } {
  const queried: number[] = [...active]
  if (elastic) {
    const limit = elastic.blockCaching ? elastic.window : masked.length
    for (let j = start; j < masked.length && queried.length < limit; j++) if (masked[j] && !active.includes(j)) queried.push(j)
  }
  const tailRows = queried.map((j) => j - shift)
  const inTail = new Set(tailRows)
  const head = elastic ? [...new Set([...(track ?? []), ...fresh])].filter((p) => !inTail.has(p)).sort((a, b) => a - b) : []
  return { rows: Int32Array.from([...head, ...tailRows]), tail: tailRows.length }
}

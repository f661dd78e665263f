/**
 * MiKV (Yang et al., 2024, "No Token Left Behind: Reliable KV Cache Compression via Importance-Aware
 * Mixed Precision Quantization"): instead of evicting the less important tokens, keep them in low
 * precision; the important ones (heavy hitters by accumulated attention, H2O's score, section 3.1) keep
 * high precision, and the newest `residual` tokens stay in float32.
 *
 * At prefill end, per KV head: of the tokens before the window, the `important` share with the largest
 * accumulated attention over the prompt's queries is packed in `hi` bits, the rest in `lo` bits. Packed
 * rows are grouped along tokens (32 a key group), so the important rows move behind the others first
 * (slots are reordered, positions follow them; attention over post-RoPE keys does not depend on slot
 * order). During decoding, tokens leaving the window are packed in `lo` bits (the importance is the
 * prompt's; MiKV's paper keeps tracking it, which would need rows to change precision later).
 *
 * MiKV's outlier channel balancing (scale key channel c by 1/s_c, the query by s_c) is not applied:
 * the store quantizes keys per channel (KIVI's grouping), where scaling a channel scales its min and
 * step alike, so the codes and the scores are unchanged: the balancing is the identity here.
 */
import type { Decision, ExtraToken, HeadDecision, HeadQuantization, KVCache } from '../cache/types.js'
import type { PageFormat } from '../cache/formats.js'
import { PolicyOptionConflictError, PolicyOptionValueError } from './errors.js'
import { headMass } from './head-mass.js'
import { FORMATS, quantizeBeyond } from './kivi.js'
import type { PolicyDefinition } from './registry.js'
import type { Policy, PolicyContext } from './types.js'
import { statelessPolicy } from './stateless.js'

export interface MiKVOptions {
  /** bits of the important tokens' codes (default 8), at least lo's */
  hi?: number
  /** bits of the other tokens' codes (default 2) */
  lo?: number
  /** share of the tokens before the window kept in high precision (default 0.2) */
  important?: number
  /** newest tokens kept in float32 (default 128) */
  residual?: number
}

/** the k slots of [0, n) with the largest mass (ties to the lower slot), ascending */
function heaviest(mass: Float32Array, n: number, k: number): Int32Array {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => mass[b] - mass[a] || a - b)
  return Int32Array.from(order.slice(0, k)).sort()
}

/**
 * The decision that moves slots `top` (ascending, all < old) and then the window [old, n) behind the
 * other slots of [0, old), positions following their rows: each precision becomes one run of slots, so
 * it packs into whole key groups (MiKV's important rows, VidKV's salient ones).
 */
export function moveBehind(cache: KVCache, layer: number, head: number, top: Int32Array, old: number): HeadDecision {
  const n = cache.length(layer, head)
  const isTop = new Uint8Array(n)
  top.forEach((i) => (isTop[i] = 1))
  const keep = new Int32Array(old - top.length)
  for (let i = 0, j = 0; i < old; i++) if (!isTop[i]) keep[j++] = i
  const keys = cache.readKeys(layer, head)
  const values = cache.readValues(layer, head)
  const pos = cache.positions(layer, head)
  const d = cache.options.headDim
  const row = (i: number): ExtraToken => ({ key: keys.slice(i * d, (i + 1) * d), value: values.slice(i * d, (i + 1) * d), position: pos[i] })
  return { layer, head, keep, extra: [...Array.from(top, row), ...Array.from({ length: n - old }, (_, j) => row(old + j))] }
}

/** MiKV's two packed formats, share and window; throws a typed PolicySpecError for a bad setting. */
function mikvSettings(options: MiKVOptions): { hi: PageFormat; lo: PageFormat; important: number; residual: number } {
  const hi = FORMATS[options.hi ?? 8]
  const lo = FORMATS[options.lo ?? 2]
  const important = options.important ?? 0.2
  const residual = options.residual ?? 128
  if (!hi) throw new PolicyOptionValueError(`mikv: hi must be 1, 2, 4 or 8 bits, got ${options.hi}`)
  if (!lo) throw new PolicyOptionValueError(`mikv: lo must be 1, 2, 4 or 8 bits, got ${options.lo}`)
  // swapped, the important tokens would be stored coarser than the rest: MiKV inverted, silently
  if ((options.hi ?? 8) < (options.lo ?? 2)) throw new PolicyOptionConflictError(`mikv: hi=${options.hi ?? 8} bits is fewer than lo=${options.lo ?? 2}: the important tokens would be stored coarser than the others`)
  if (!(important >= 0 && important <= 1)) throw new PolicyOptionValueError(`mikv: important must be in [0, 1], got ${important}`)
  if (!(Number.isInteger(residual) && residual >= 0)) throw new PolicyOptionValueError(`mikv: residual must be a non-negative integer, got ${residual}`)
  return { hi, lo, important, residual }
}

export function createMiKV(options: MiKVOptions = {}): Policy {
  const { hi, lo, important, residual } = mikvSettings(options)
  return statelessPolicy({
    name: 'mikv',
    needs: { prefillAttentionMass: true },
    traits: { decodes: true, quantizes: true },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      const heads: HeadDecision[] = []
      const quantize: HeadQuantization[] = []
      for (let layer = 0; layer < model.layers; layer++) {
        for (let head = 0; head < model.kvHeads; head++) {
          const n = cache.length(layer, head)
          const old = Math.max(0, n - residual)
          if (old === 0) continue
          const mass = headMass(ctx.hooks[layer], model.kvHeads, head, n)
          if (!mass) throw new Error(`mikv: layer ${layer} head ${head} has no attention mass for its ${n} tokens`)
          const k = Math.round(important * old)
          // the important rows, then the window's, move behind the low-precision ones
          heads.push(moveBehind(cache, layer, head, heaviest(mass, old, k), old))
          quantize.push({ layer, head, upto: old - k, keys: lo, values: lo })
          if (k) quantize.push({ layer, head, upto: old, keys: hi, values: hi })
        }
      }
      return heads.length ? { heads, quantize } : null
    },
    onDecodeStep: (ctx) => quantizeBeyond(ctx.cache, ctx.model, residual, lo, lo),
  })
}

export const mikv: PolicyDefinition = {
  name: 'mikv',
  description: 'MiKV: tokens with the most accumulated attention packed in high precision, the rest in low precision instead of evicted, newest in float32',
  stage: 'quantization',
  options: [
    { name: 'hi', type: 'integer', default: 8, min: 1, max: 8, description: 'bits of the important tokens: 8, 4, 2 or 1' },
    { name: 'lo', type: 'integer', default: 2, min: 1, max: 8, description: 'bits of the other tokens: 8, 4, 2 or 1' },
    { name: 'important', type: 'number', default: 0.2, min: 0, max: 1, description: 'share of the tokens before the window kept in high precision (heavy hitters)' },
    { name: 'residual', type: 'integer', default: 128, min: 0, description: 'newest tokens kept in float32' },
  ],
  check: (o) => void mikvSettings(o as MiKVOptions),
  create: (o) => createMiKV(o as MiKVOptions),
}

/**
 * KIVI (Liu et al., 2024, "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache"): keys
 * quantized per channel in groups of G tokens, values per token in groups of G channels (at most
 * head_dim: formats.ts valueGroupFor), 2 or 4 bits, asymmetric min-max (section 3); the newest tokens
 * stay full precision (the residual window R, default 128) until a whole key group is ready. G is
 * `groupSize`, KIVI's released `group_size` and Hugging Face's QuantizedCacheConfig `q_group_size`:
 * 32 (default), 64 or 128 (the paper's ablation, table 6, takes the three). A larger group shares each
 * float16 (scale, min) over more tokens, so fewer bytes a key, and folds the query into the scales once
 * for more keys, so integer scoring is faster; the codes are coarser for it. The cache stores the packed codes for real (packed
 * pages, `HeadQuantization`) and attends to them with the fused kernels, so the bytes are freed.
 *
 * When: at prefill end every head packs slots [0, floor((n - R) / G) * G); after each decode step a
 * head whose float tail has grown to R + G tokens packs one more group. The float tail thus holds
 * between R and R + G - 1 tokens (KIVI's released code quantizes the residual when it reaches R; the
 * granularity here is the key group).
 */
import type { Decision, HeadQuantization, KVCache } from '../cache/types.js'
import { checkKeyGroup, formatInfo, type PageFormat } from '../cache/formats.js'
import { PolicyOptionValueError } from './errors.js'
import type { PolicyDefinition } from './registry.js'
import type { ModelShape, Policy, PolicyContext } from './types.js'
import { statelessPolicy } from './stateless.js'

export interface KiviOptions {
  /** bits per key and value code: 2 or 4 (KIVI's settings), or 8 and 1 (default 2) */
  bits?: number
  /** newest tokens kept in float32 until a whole key group is ready (default 128) */
  residual?: number
  /** tokens per key group and channels (at most head_dim) per value group: 32 (default), 64 or 128 */
  groupSize?: number
}

const GROUP = 32
export const FORMATS: Record<number, PageFormat> = { 8: 'int8', 4: 'int4', 2: 'int2', 1: 'int1' }

/**
 * rows of a head already packed (its leading packed segments: integer or ternary codes); float32 and
 * float16 rows (the cache's kvDtype) are float rows, still to pack
 */
export function packedRows(cache: KVCache, layer: number, head: number): number {
  let n = 0
  for (const s of cache.segments(layer, head)) {
    if (!formatInfo(s.format).scaled && !formatInfo(s.valueFormat).scaled) break
    n += s.n
  }
  return n
}

/**
 * One entry per head whose float rows beyond the newest `residual` hold whole groups of `group` tokens:
 * those groups are packed in `keys`/`values` after the head's packed rows.
 */
export function quantizeBeyond(cache: KVCache, model: ModelShape, residual: number, keys: PageFormat, values: PageFormat, group = GROUP): Decision | null {
  const quantize: HeadQuantization[] = []
  for (let layer = 0; layer < model.layers; layer++) {
    for (let head = 0; head < model.kvHeads; head++) {
      const packed = packedRows(cache, layer, head)
      const upto = packed + Math.floor(Math.max(0, cache.length(layer, head) - packed - residual) / group) * group
      if (upto > packed) quantize.push({ layer, head, upto, keys, values, ...(group !== GROUP ? { group } : {}) })
    }
  }
  return quantize.length ? { heads: [], quantize } : null
}

/** The packed format and window of KIVI's options; throws PolicyOptionValueError for a width the packer lacks. */
function kiviSettings(options: KiviOptions): { format: PageFormat; residual: number; group: number } {
  const bits = options.bits ?? 2
  const residual = options.residual ?? 128
  const format = FORMATS[bits]
  if (!format) throw new PolicyOptionValueError(`kivi: bits must be 1, 2, 4 or 8, got ${bits}`)
  if (!(Number.isInteger(residual) && residual >= 0)) throw new PolicyOptionValueError(`kivi: residual must be a non-negative integer, got ${residual}`)
  const group = checkKeyGroup(options.groupSize ?? GROUP, 'kivi: groupSize', PolicyOptionValueError)
  return { format, residual, group }
}

export function createKivi(options: KiviOptions = {}): Policy {
  const { format, residual, group } = kiviSettings(options)
  const step = (ctx: PolicyContext) => quantizeBeyond(ctx.cache, ctx.model, residual, format, format, group)
  return statelessPolicy({
    name: 'kivi',
    // pages of 64 tokens (the default) hold groups of 32 and 64; groups of 128 need pages of 128
    needs: group > 64 ? { pageTokens: group } : {},
    traits: { decodes: true, quantizes: true },
    onPrefillEnd: step,
    onDecodeStep: step,
  })
}

export const kivi: PolicyDefinition = {
  name: 'kivi',
  description: 'KIVI: keys per channel and values per token packed to 1, 2, 4 or 8 bits (KIVI\'s are 2 and 4; groups of 32, 64 or 128, float16 scale and min), newest tokens in float32; composes after eviction',
  stage: 'quantization',
  options: [
    { name: 'bits', type: 'integer', default: 2, min: 1, max: 8, description: 'bits per key and value code: 1, 2, 4 or 8 (KIVI\'s are 2 and 4)' },
    { name: 'residual', type: 'integer', default: 128, min: 0, description: 'newest tokens kept in float32 until a whole key group is ready' },
    { name: 'groupSize', type: 'integer', default: 32, min: 32, max: 128, description: "tokens per key group and channels (at most head_dim) per value group (KIVI's group_size): 32, 64 or 128 (fewer bytes a key and faster integer scoring, coarser codes)" },
  ],
  check: (o) => void kiviSettings(o as KiviOptions),
  create: (o) => createKivi(o as KiviOptions),
}

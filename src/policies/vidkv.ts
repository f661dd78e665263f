/**
 * VidKV (Tao et al. 2025, "Plug-and-Play 1.x-Bit KV Cache Quantization for Video Large Language Models"):
 * keys in mixed precision per channel, values at 1.58 bits with semantic token protection (section 3).
 *
 * - Keys (section 3.2): the `round((keyBits - 1) * head_dim)` channels with the largest range (max - min
 *   over the tokens packed) get 2-bit min-max codes per group of tokens; the other channels go through a
 *   real FFT across them and keep 1-bit signs of each spectral coefficient, +-mean|x| per group
 *   (int2+sign pages, src/cache/basis.ts). 1.5 bits: half the channels 2-bit (the released default).
 * - Values (section 3.3): ternary s * t, t in {-1, 0, 1}, s = mean |x| per group of channels of a token,
 *   threshold s / 2; the `salient` share of tokens (semantic token protection, STP) keep 2-bit values.
 *   STP ranks tokens by the mean similarity of their input embedding to the text query's (the released
 *   code: vision tokens . text tokens, averaged over the text); here the text query is the prompt's last
 *   `window` tokens (the question) and the ranked tokens the rest, one choice for every layer and head.
 *   Where a composition evicted different tokens per head before VidKV, the embeddings no longer map to
 *   the cache's rows and no token is protected.
 * - The newest `residual` tokens stay float until a whole group is ready (KIVI's residual, R = 128
 *   in the released configs).
 * - Groups (`groupSize`, KIVI's and Hugging Face's `q_group_size`, one size for keys and values): keys
 *   per channel along `groupSize` tokens, values per token along min(groupSize, head_dim) channels
 *   (formats.ts valueGroupFor). The paper fixes 32 (Table 1; the released configs' q_group_size = 32),
 *   the default. 128 is leaner: float16 metadata of the keys drop from 6 to 1.5 bytes a token, and a
 *   64-channel value row keeps one ternary scale instead of two; it is the setting that makes a 32k-token
 *   cache at least 8x smaller than float16 (BENCHMARKS.md, "VidKV (issue 12)"). Groups of 128 ask for
 *   cache pages of 128 tokens (`needs.pageTokens`). Bad values: PolicyOptionValueError naming them.
 * - Byte layout (formats.ts): the 1-bit groups keep their scale s alone, as the released code does; the
 *   2-bit ones a float16 (scale, min).
 *
 * Kept apart from the paper: the key channels are chosen per (layer, KV head) from the prompt's keys at
 * prefill end and kept for the tokens packed while decoding (the released code re-ranks all layers'
 * heads together at every flush, re-quantizing the whole cache); values are grouped per token along
 * channels, the store's value layout (the paper finds per-channel grouping of values better for video
 * models); the released dequantizers are wrong (1-bit codes read as {0, s}, ternary codes unscaled:
 * methods.md), these read +-s and s * t. Salient rows move behind the others so each precision is one
 * run of whole key groups (slots are reordered, positions follow: MiKV does the same).
 */
import type { Decision, HeadDecision, HeadQuantization, KVCache } from '../cache/types.js'
import { SIGN_GROUPS, type PageFormat } from '../cache/formats.js'
import { PolicyOptionValueError } from './errors.js'
import { packedRows, quantizeBeyond } from './kivi.js'
import { moveBehind } from './mikv.js'
import type { PolicyDefinition } from './registry.js'
import type { ModelShape, Policy, PolicyContext } from './types.js'
import { statelessPolicy } from './stateless.js'

export interface VidKVOptions {
  /** average bits of a key channel's code, in [1, 2]: (keyBits - 1) of the channels 2-bit, the rest 1-bit (default 1.5) */
  keyBits?: number
  /** bits of the non-salient values: 1.58 (ternary) or 2 (default 1.58) */
  valueBits?: number
  /** share of the tokens before the window whose values keep 2 bits (semantic token protection; default 0.2) */
  salient?: number
  /** the prompt's last tokens taken as the text query that salient tokens resemble (default 32) */
  window?: number
  /** newest tokens kept in float32 (default 128) */
  residual?: number
  /** tokens per key group, channels (at most head_dim) per value group: 32 (the paper's), 64 or 128 (default 32) */
  groupSize?: number
}

/**
 * The `hi` channels (ascending) of rows [from, to) of keys [n][d] with the largest range max - min
 * (ties to the lower channel): VidKV's anomalous channels.
 */
export function widestChannels(keys: Float32Array, d: number, from: number, to: number, hi: number): Int32Array {
  const range = new Float64Array(d)
  for (let c = 0; c < d; c++) {
    let mn = Infinity
    let mx = -Infinity
    for (let i = from; i < to; i++) {
      const x = keys[i * d + c]
      if (x < mn) mn = x
      if (x > mx) mx = x
    }
    range[c] = to > from ? mx - mn : 0
  }
  const order = Array.from({ length: d }, (_, c) => c).sort((a, b) => range[b] - range[a] || a - b)
  return Int32Array.from(order.slice(0, hi)).sort()
}

/**
 * Semantic token protection: the k of tokens [0, old) (ascending) whose embedding rows of `emb` [rows][h]
 * have the largest dot product with the mean of its last `window` rows (ties to the lower token).
 */
export function salientTokens(emb: Float32Array, h: number, old: number, window: number, k: number): Int32Array {
  const rows = emb.length / h
  const w = Math.min(window, rows)
  const mean = new Float64Array(h)
  for (let r = rows - w; r < rows; r++) for (let c = 0; c < h; c++) mean[c] += emb[r * h + c] / w
  const score = new Float64Array(old)
  for (let i = 0; i < old; i++) {
    let s = 0
    for (let c = 0; c < h; c++) s += emb[i * h + c] * mean[c]
    score[i] = s
  }
  const order = Array.from({ length: old }, (_, i) => i).sort((a, b) => score[b] - score[a] || a - b)
  return Int32Array.from(order.slice(0, k)).sort()
}

/** the int2 channels of a head's packed keys so far, or the widest of its rows [from, to) */
function headChannels(cache: KVCache, layer: number, head: number, from: number, to: number, hi: number): Int32Array {
  const basis = cache.segments(layer, head).find((s) => s.keyBasis)?.keyBasis
  if (basis) return basis.hi
  return widestChannels(cache.readKeys(layer, head), cache.options.headDim, from, to, hi)
}

function checkOptions(o: VidKVOptions): Required<VidKVOptions> {
  const r = { keyBits: o.keyBits ?? 1.5, valueBits: o.valueBits ?? 1.58, salient: o.salient ?? 0.2, window: o.window ?? 32, residual: o.residual ?? 128, groupSize: o.groupSize ?? 32 }
  if (!(r.keyBits >= 1 && r.keyBits <= 2)) throw new PolicyOptionValueError(`vidkv: keyBits must be in [1, 2], got ${o.keyBits}`)
  if (r.valueBits !== 1.58 && r.valueBits !== 2) throw new PolicyOptionValueError(`vidkv: valueBits must be 1.58 (ternary) or 2, got ${o.valueBits}`)
  if (!(r.salient >= 0 && r.salient <= 1)) throw new PolicyOptionValueError(`vidkv: salient must be in [0, 1], got ${o.salient}`)
  if (!(Number.isInteger(r.window) && r.window >= 1)) throw new PolicyOptionValueError(`vidkv: window must be a positive integer, got ${o.window}`)
  if (!(Number.isInteger(r.residual) && r.residual >= 0)) throw new PolicyOptionValueError(`vidkv: residual must be a non-negative integer, got ${o.residual}`)
  if (!SIGN_GROUPS.includes(r.groupSize)) throw new PolicyOptionValueError(`vidkv: groupSize must be ${SIGN_GROUPS.slice(0, -1).join(', ')} or ${SIGN_GROUPS.at(-1)}, got ${o.groupSize}`)
  return r
}

export function createVidKV(options: VidKVOptions = {}): Policy {
  const { keyBits, valueBits, salient, window, residual, groupSize: group } = checkOptions(options)
  const lo: PageFormat = valueBits === 2 ? 'int2' : 'ternary'
  const hiOf = (model: ModelShape) => Math.round((keyBits - 1) * model.headDim)
  const protect = lo !== 'int2' && salient > 0
  return statelessPolicy({
    name: 'vidkv',
    // pages of 64 tokens (the default) hold groups of 32 and 64; groups of 128 need pages of 128
    needs: { ...(protect ? { hiddenStates: true } : {}), ...(group > 64 ? { pageTokens: group } : {}) },
    traits: { decodes: true, quantizes: true, packsWholeKeys: true },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      const heads: HeadDecision[] = []
      const quantize: HeadQuantization[] = []
      // the input embeddings: layer 0's hidden states, a row per slot of layer 0 (a composition remaps them
      // after an eviction that kept the same tokens in every head, and drops them otherwise); a head whose
      // slots hold other tokens protects none
      const emb = ctx.hooks[0]?.hiddenStates
      const rows = cache.length(0, 0)
      const hidden = emb && rows && emb.length % rows === 0 ? emb.length / rows : 0
      const tokens = String(cache.positions(0, 0))
      for (let layer = 0; layer < model.layers; layer++) {
        for (let head = 0; head < model.kvHeads; head++) {
          const n = cache.length(layer, head)
          const old = Math.max(0, n - residual)
          if (old === 0) continue
          const keys = cache.readKeys(layer, head)
          const keyHiChannels = widestChannels(keys, model.headDim, 0, old, hiOf(model))
          const k = protect && hidden && n === rows && String(cache.positions(layer, head)) === tokens ? Math.round(salient * old) : 0
          if (!k) {
            quantize.push({ layer, head, upto: old, keys: 'int2+sign', values: lo, keyHiChannels, group })
            continue
          }
          // the salient rows, then the window's, move behind the ternary ones
          heads.push(moveBehind(cache, layer, head, salientTokens(emb!, hidden, old, window, k), old))
          quantize.push({ layer, head, upto: old - k, keys: 'int2+sign', values: lo, keyHiChannels, group })
          quantize.push({ layer, head, upto: old, keys: 'int2+sign', values: 'int2', keyHiChannels, group })
        }
      }
      return heads.length || quantize.length ? { heads, quantize } : null
    },
    onDecodeStep(ctx: PolicyContext): Decision | null {
      const d = quantizeBeyond(ctx.cache, ctx.model, residual, 'int2+sign', lo, group)
      for (const q of d?.quantize ?? []) q.keyHiChannels = headChannels(ctx.cache, q.layer, q.head, packedRows(ctx.cache, q.layer, q.head), q.upto, hiOf(ctx.model))
      return d
    },
  })
}

export const vidkv: PolicyDefinition = {
  name: 'vidkv',
  description: 'VidKV: 1.x-bit keys (widest channels 2-bit, the rest FFT + 1-bit signs) and ternary values with salient tokens at 2 bits, newest in float32',
  stage: 'quantization',
  options: [
    { name: 'keyBits', type: 'number', default: 1.5, min: 1, max: 2, description: 'average key bits: (keyBits - 1) of the channels 2-bit, the rest FFT + 1-bit signs' },
    { name: 'valueBits', type: 'number', default: 1.58, min: 1.58, max: 2, description: 'bits of the values: 1.58 (ternary) or 2' },
    { name: 'salient', type: 'number', default: 0.2, min: 0, max: 1, description: 'share of the tokens before the window whose values keep 2 bits (semantic token protection)' },
    { name: 'window', type: 'integer', default: 32, min: 1, description: "the prompt's last tokens taken as the text query salient tokens resemble" },
    { name: 'residual', type: 'integer', default: 128, min: 0, description: 'newest tokens kept in float32 until a whole group is ready' },
    { name: 'groupSize', type: 'integer', default: 32, min: 32, max: 128, description: "tokens per key group and channels (at most head_dim) per value group: 32 (the paper's), 64 or 128 (128: 8x smaller than float16 at 32k)" },
  ],
  check: (o) => void checkOptions(o as VidKVOptions),
  create: (o) => createVidKV(o as VidKVOptions),
}

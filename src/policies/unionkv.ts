/**
 * UnionKV, kvkit's own token-eviction method: a query-agnostic share that every head picks for itself
 * by LagKV's lag-relative score, and a query-aware share that is the union over every head of the model
 * of what the heads vote for (a maximum over heads, so a token one retrieval head wants survives even
 * when all the others ignore it), each layer topping up from its own heads. C = floor(budget x prompt)
 * per head, as everywhere in kvkit.
 *
 *   a[l,h,i]   the query-agnostic rank of token i inside its partition of 128 tokens: LagKV's, scored
 *             against the next partition from keys and values (`agnosticScore=lag`, the default;
 *             lag-score.ts), or KeyDiff's, minus the cosine of its key to the block's mean key
 *             (`keydiff`; its last block takes the remainder; block-scores.ts), or half by each
 *             (`keydiff-lag`)
 *   v[l,h,i]  SnapKV's vote of token i at (layer l, KV head h): attention of the last w prompt queries
 *             (w = 16), mean over the KV head's query group, averaged over 9 positions      (observe.ts)
 *   keep      the first `sinks` tokens and the window (the last w tokens)
 *   1. each head (l,h):  its top agnostic x C tokens of a[l,h,i] (default half the budget; with
 *                        keydiff-lag KeyDiff's top agnostic/2 x C, then LagKV's up to agnostic x C)
 *   2. if contrast > 0:  the top contrastShare x C of max_{l,h} v[l,h,i] / mean(v[l,h, i-span/2 .. i+span/2]),
 *                        the votes that stand out from their neighbourhood, not the recent ones
 *   3. up to (1 - local) x C:  the top of max_{l,h} v[l,h,i]              (the model-wide union)
 *   4. each layer l, up to C:  the top of sum_h v[l,h,i]                  (its own heads' top-up)
 * Each stage takes the highest tokens not kept yet (step 1 only scored ones: with LagKV's score the last
 * partition and the remainder have no lag partition and are left to the votes). Every head stores exactly C tokens, so
 * the bytes are really freed (budget 0.25: 25% of the full cache's KV bytes).
 *
 * Why two shares: the votes come from the prompt's last queries, which hold the question only when it
 * is compressed with the context; a context compressed before the question arrives (a document reused
 * for many questions) has only its own last sentence to vote, and the votes then favour recent text.
 * The block ranks need no query and spread their share evenly along the text (every block ranks its
 * own tokens), so needles far from the end keep their tokens in both loops. KeyDiff's rank (issue 21)
 * keeps more of vt's chain statements' tokens (distinct keys: "VAR", capitals, digits among prose) and
 * scores the text just before the window, where LagKV scores nothing (a passkey there was lost at
 * 12.5%); alone it lost passkey samples that LagKV's picks keep (the digits). `keydiff-lag` takes both:
 * on 8-16 tuning samples a cell it won 9 outcomes and lost 3, but on all 24 samples a task (72 prompts,
 * both loops) it gains 1-3 points at 50% and 25% and loses 4-5 at 12.5% (niah_single), so LagKV's share
 * stays the default (BENCHMARKS.md "UnionKV: query-agnostic scores for vt").
 *
 * `agnosticScore` picks step 1's score (block-scores.ts), each ranked inside blocks of `lag` tokens:
 * `lag` (LagKV's), `keydiff` (KeyDiff's, Park et al. 2025, arXiv 2504.15364: minus the cosine of the
 * key to its block's mean key; its last block takes the remainder, so the text just before the window is
 * scored too, where LagKV leaves it to the votes) or `mass` (H2O's attention received per query that
 * sees the token; measured worse: it keeps the chain statements of vt less often than chance). With
 * keydiff, `blockRank=false` ranks the raw cosines over the whole text instead of per block, and
 * `span` > 1 max-pools step 1's score over a run of tokens before ranking (SnapKV's pooling), so that a
 * short statement would be kept whole; both measured, neither helped (span=5 lost passkey samples).
 * `lagShare` with keydiff adds LagKV's picks after KeyDiff's (step 1b below); `keydiff-lag` splits the
 * agnostic share so: KeyDiff's top agnostic/2 x C, then LagKV's up to agnostic x C.
 *
 * When the question comes after the compression (the context's `promptAfter` > 0: generate's
 * `contextTokens`, the eval's `--question after`, a document compressed for reuse), the votes come from
 * the context's own last sentence, which the question rarely needs. `afterAgnostic` then replaces step
 * 1's share, `afterFloor` raises it to at least that share of the prompt's tokens (LagKV's ranks need a
 * density per partition to keep a needle; a floor of 0.11 binds at 12.5% only, 0.88 of the budget), and
 * `afterTail` (`always`, or `floor`: where the floor binds) puts LagKV's unscored tail (its last full
 * partition and the remainder, before the window) first in step 1, latest first, as kvpress's LagKV
 * keeps it whole (a needle there is otherwise left to votes that do not reach it). With it `lagTail`
 * (kvkit's) ranks the last full partition too, against the remainder after it (16 tokens or more), so
 * only the remainder comes first: kept whole, the tail is about 40% of the budget at 12.5%
 * (lag-score.ts). With afterAgnostic=1, afterTail=always and sinks=4, UnionKV keeps LagKV's set exactly
 * (test/policies-unionkv.test.ts). With the question in the prompt none of these acts. Measured at
 * 12.5% with the question after, 72 prompts (BENCHMARKS.md "UnionKV when the question comes after"):
 * 43 correct answers before, 49 with share 0.875 and the tail first (LagKV's 49: one vt sample more,
 * one niah_single less); share 1 with the tail gives LagKV's answers sample for sample; lagTail gave
 * no more. Hence the defaults afterFloor=7/64, afterTail=floor: they bind below 21.9% of the prompt
 * and only with the question after, so every other (budget, loop) cell keeps its tokens. Where the floor
 * binds, `afterRest` says what fills the rest of the budget after LagKV's floor: the votes (steps 3-4,
 * the default without gates), TRIM-KV's retention (`gates`, the default with `gatesFile`: the floor binds
 * with the gates too, LagKV's picks first) or KeyDiff's ranks (`keydiff`). At 12.5%, 72 prompts a set
 * of books: on the eval's they all keep 47-49 answers, LagKV 49; the gates keep 49 against LagKV's 47
 * on four of the eval's books alone, and 46 against 48 on four books nothing was tuned or trained on
 * (BENCHMARKS.md "UnionKV with the gates when the question comes after").
 *
 * With `gatesFile` (TRIM-KV's learned retention gates, e.g. models/fixture-14m-trimkv), step 1 ranks by
 * TRIM-KV's retention score (n - pos_i) log beta_i instead (Bui et al. 2025), still per head, and
 * `lagShare` > 0 adds step 1b: each head's top of LagKV's score up to (agnostic + lagShare) x C.
 *
 * With `bits` (2, 4 or 8), `budget` is a share of the cache's bytes rather than of its tokens: every head
 * keeps the most tokens whose rows fit it once packed in KIVI's format at groups of 128 (all but the
 * newest C mod 128, which stay in the cache's float type; packed-budget.ts), ranked by the steps above,
 * and the composed KIVI part packs them (residual 0). This is MiKV's observation (Yang et al. 2024, "No
 * Token Left Behind"): at 12.5% of a float16 cache, int2 rows let a head keep about 80% of its tokens
 * instead of 12.5%, and the needles a token ranking misses survive in low precision. Measured against
 * kvpress's presses at equal KV bytes in BENCHMARKS.md "UnionKV at a byte budget".
 *
 * In a composition UnionKV comes first, or after a part that leaves every head of a layer the same slots
 * (StreamingLLM): the union reads slot i as one token in every head, so after a per-head eviction (SnapKV,
 * AdaKV, PyramidKV) it is refused (PolicyCompositionError, compose.ts).
 *
 * Sources: step 1 is LagKV's score (Liang et al. 2025, arXiv 2504.04704; kvpress `LagKVPress`), one of
 * kvpress's strongest presses on this model (peers.md), taken per head as LagKV does: with it UnionKV
 * kept 73% of the full cache's accuracy at 12.5% instead of 48%, and 83% at 25% with the question after
 * the context instead of 39% (BENCHMARKS.md "UnionKV with LagKV's query-agnostic share"); the vote is SnapKV's (Li et al. 2024); the model-wide
 * union (steps 3-4) and the neighbourhood contrast (step 2, off by default: it cost vt) are kvkit's,
 * found on the fixture model (BENCHMARKS.md "UnionKV").
 */
import type { Ops } from '../backend/ops.js'
import { budgetFrom, budgetOptions, topKIndices } from './budget.js'
import { evictionPolicy } from './evict.js'
import { headMass } from './head-mass.js'
import { lagScores } from './lag-score.js'
import { keyDiffScores, massScores, maxPoolScored } from './block-scores.js'
import { checkObservationOptions, observationOptions } from './observe.js'
import type { OptionSpec, PolicyDefinition } from './registry.js'
import { snapScorer } from './snapkv.js'
import type { PolicyContext } from './types.js'
import { PolicyOptionValueError } from './errors.js'
import { logRetention, readGatesFile, type TrimKVGates } from './trimkv-gates.js'
import { checkGates } from './trimkv.js'
import { composePolicies } from './compose.js'
import { createKivi, FORMATS } from './kivi.js'
import { PACKED_GROUP, packedTokensPerHead } from './packed-budget.js'

/**
 * adds to `kept` (0/1 per slot) the `count` highest scores not kept yet, none scored -Infinity; ties to
 * the lower slot. A model-wide score longer than the head (a layer that holds more tokens) is cut to it.
 */
function fill(ops: Ops, score: Float32Array, kept: Uint8Array, count: number): void {
  const s = score.slice(0, kept.length)
  let free = 0
  for (let i = 0; i < s.length; i++) if (kept[i]) s[i] = -Infinity
  else if (s[i] > -Infinity) free++
  if (count <= 0 || free === 0) return
  for (const i of topKIndices(ops, s, Math.min(count, free))) kept[i] = 1
}

const held = (kept: Uint8Array) => kept.reduce((s, x) => s + x, 0)

/**
 * elementwise max or sum over score arrays, as long as the longest: layers may hold different counts
 * after a part that keeps one selection a layer (WindowKV's layer groups, MPCache), and the first
 * array's length cut the longer heads' slots off (they kept fewer tokens than their budget, in bytes
 * more: a byte budget's float tail grew) and read NaN past the shorter ones
 */
function combine(scores: Float32Array[], how: 'max' | 'sum'): Float32Array {
  const out = new Float32Array(Math.max(...scores.map((s) => s.length))).fill(how === 'max' ? -Infinity : 0)
  for (const s of scores) for (let i = 0; i < s.length; i++) out[i] = how === 'max' ? Math.max(out[i], s[i]) : out[i] + s[i]
  return out
}

/**
 * Each finite vote divided by the mean finite vote of the `span` slots around it: the model's votes fall
 * with distance from the window, so the raw maximum keeps mostly the recent text; a needle deep in the
 * prompt stands out against its neighbours even where its raw vote is small. +Infinity stays.
 */
export function contrastVotes(v: Float32Array, span: number): Float32Array {
  const n = v.length
  const pre = new Float64Array(n + 1)
  const cnt = new Int32Array(n + 1)
  for (let i = 0; i < n; i++) {
    const f = Number.isFinite(v[i])
    pre[i + 1] = pre[i] + (f ? v[i] : 0)
    cnt[i + 1] = cnt[i] + (f ? 1 : 0)
  }
  const out = v.slice()
  const half = span >> 1
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(v[i])) continue
    const lo = Math.max(0, i - half)
    const hi = Math.min(n, i + half + 1)
    out[i] = v[i] / ((pre[hi] - pre[lo]) / (cnt[hi] - cnt[lo]) + 1e-12)
  }
  return out
}

function withDefaults(defs: readonly OptionSpec[], over: Record<string, number | string>): OptionSpec[] {
  return defs.map((o) => (o.name in over ? { ...o, default: over[o.name] } : o))
}

export const unionkvOptions: OptionSpec[] = [
  ...budgetOptions,
  ...withDefaults(observationOptions, { window: 16, pooling: 'avg', kernel: 9 }),
  { name: 'sinks', type: 'integer', default: 0, min: 0, description: 'always keep the first N tokens (attention sinks); LagKV\'s partitions start after them' },
  { name: 'local', type: 'number', default: 0.25, min: 0, max: 1, description: 'share of each head\'s budget its layer tops up from its own heads\' summed votes (step 4)' },
  { name: 'contrast', type: 'integer', default: 0, min: 0, description: 'span in tokens of the neighbourhood a vote is divided by (step 2); 0: off' },
  { name: 'contrastShare', type: 'number', default: 0.25, min: 0, max: 1, description: 'share of the budget chosen by contrasted votes when contrast > 0' },
  { name: 'agnostic', type: 'number', default: 0.5, min: 0, max: 1, description: 'share of each head\'s budget it chooses by LagKV\'s query-agnostic score (step 1); 0: off (UnionKV before 2026-11-30)' },
  { name: 'lag', type: 'integer', default: 128, min: 2, description: 'LagKV partition in tokens: each is scored against the next (and the block agnosticScore ranks inside)' },
  { name: 'blockRank', type: 'boolean', default: true, description: 'with agnosticScore=keydiff: rank inside each block (every block the same share) or take the top raw scores over the whole text' },
  { name: 'span', type: 'integer', default: 1, min: 1, description: 'max-pool step 1\'s score over this many tokens (odd) before ranking, so a short statement is kept as a run; 1: off' },
  { name: 'agnosticScore', type: 'string', default: 'lag', choices: ['lag', 'keydiff', 'keydiff-lag', 'mass'], description: 'step 1\'s score, ranked per partition: LagKV\'s, KeyDiff\'s key distinctness, half KeyDiff\'s then half LagKV\'s picks, or H2O\'s attention received' },
  { name: 'gatesFile', type: 'string', default: null, readsFile: true, description: 'TRIM-KV retention gates (.json or .safetensors): step 1 ranks by (n - pos) log beta instead of LagKV\'s score (prefill-end compression only)' },
  { name: 'lagShare', type: 'number', default: 0, min: 0, max: 1, description: 'with gatesFile or agnosticScore keydiff/mass: share of each head\'s budget chosen next by LagKV\'s score (step 1b); 0: off' },
  { name: 'afterAgnostic', type: 'number', default: null, min: 0, max: 1, description: 'step 1\'s share when the question is prefilled after compression (the context\'s promptAfter > 0); default: agnostic\'s' },
  { name: 'afterFloor', type: 'number', default: 0.109375, min: 0, max: 1, description: 'when the question is prefilled after compression and step 1 is LagKV\'s or the gates\' (agnosticScore=lag or gatesFile, not keydiff-lag): LagKV\'s picks take at least this share of the prompt\'s tokens (up to the whole budget), so LagKV keeps its density per partition at small budgets (7/64: 0.875 of the budget at 12.5%, unbinding from 21.9%); 0: off' },
  { name: 'afterTail', type: 'string', default: 'floor', choices: ['off', 'floor', 'always'], description: 'when the question is prefilled after compression: LagKV\'s unscored tail (before the window) enters step 1 ahead of its ranks, latest first, as kvpress\'s LagKV keeps it whole; floor: only where afterFloor raises the share' },
  { name: 'afterRest', type: 'string', default: 'auto', choices: ['auto', 'votes', 'gates', 'keydiff'], description: 'when the question is prefilled after compression and afterFloor binds: what fills the budget after LagKV\'s floor: the votes (steps 3-4), TRIM-KV\'s retention (needs gatesFile) or KeyDiff\'s key distinctness (both query-agnostic); auto: gates with gatesFile, else votes; another value where the floor cannot bind (afterFloor=0, agnosticScore other than lag without gatesFile, keydiff-lag) is refused' },
  { name: 'bits', type: 'integer', default: null, min: 2, max: 8, description: 'pack the kept tokens in 2, 4 or 8 bits (KIVI, groups of 128) and read budget as a share of the cache\'s bytes: each head keeps as many tokens as fit (packed-budget.ts); unset: float rows, budget a share of tokens. Other than 2, 4 or 8, or with tokens or every > 0: PolicyOptionValueError; beside another quantizer, or before an eviction or channel pruning: PolicyCompositionError' },
  { name: 'lagTail', type: 'boolean', default: false, description: 'where afterTail acts: LagKV\'s last full partition is ranked too, against the remainder after it (16 tokens or more), so only the remainder comes first' },
]

/**
 * TRIM-KV's retention score of every slot of (layer, head) at the end of the prompt, from the gates and the
 * hidden states entering the layer (Bui et al. 2025, sec. 3): (n - pos_i) log beta_i, n the prompt length.
 */
function retentionScores(gates: TrimKVGates, ctx: PolicyContext, layer: number, head: number): Float32Array {
  const hs = ctx.hooks[layer].hiddenStates
  const H = gates.hidden
  if (!hs) throw new Error(`unionkv: layer ${layer}: no hidden states captured for the retention gates`)
  const pos = ctx.cache.positions(layer, head)
  const n = ctx.promptLength
  const out = new Float32Array(pos.length)
  const beta = new Float64Array(gates.kvHeads)
  pos.forEach((p, i) => {
    logRetention(gates, layer, hs.subarray(p * H, (p + 1) * H), beta)
    out[i] = (n - p) * beta[head]
  })
  return out
}

/**
 * Why LagKV's floor (afterFloor) can never bind with these options, or null where it can: it is LagKV's
 * density, so it binds where step 1 is LagKV's score or the gates' (not KeyDiff's, H2O's or the split's)
 */
function floorBlocker(o: Record<string, unknown>): string | null {
  if (o.afterFloor === 0) return 'afterFloor=0'
  if (o.agnosticScore === 'keydiff-lag') return 'agnosticScore=keydiff-lag'
  return !o.gatesFile && o.agnosticScore !== 'lag' ? `agnosticScore=${o.agnosticScore}` : null
}

export const unionkv: PolicyDefinition = {
  name: 'unionkv',
  description: 'UnionKV (kvkit): each head keeps its own LagKV picks (query-agnostic) and the tokens any head of the model votes for, each layer topping up from its own heads',
  stage: 'eviction',
  options: unionkvOptions,
  check(o) {
    checkObservationOptions(o)
    if ((o.span as number) % 2 !== 1) throw new PolicyOptionValueError(`unionkv: span must be odd, got ${o.span}`)
    const gates = !!o.gatesFile
    if (gates && (o.every as number) > 0) throw new PolicyOptionValueError(`unionkv: gatesFile scores tokens at prefill end only; every must be 0, got ${o.every}`)
    // keydiff-lag: KeyDiff's picks for the first half of the agnostic share, LagKV's for the second
    const split = o.agnosticScore === 'keydiff-lag'
    const agnosticScore = split ? 'keydiff' : o.agnosticScore
    if (split && !gates && (o.lagShare as number) > 0) throw new PolicyOptionValueError(`unionkv: agnosticScore=keydiff-lag already splits the agnostic share with LagKV; lagShare must be 0, got ${o.lagShare}`)
    if (!o.blockRank && agnosticScore !== 'keydiff') throw new PolicyOptionValueError(`unionkv: blockRank=false needs agnosticScore=keydiff, got ${agnosticScore}`)
    // H2O's mass is captured over the prompt only: a decode-time recompression would rank stale sums
    if (agnosticScore === 'mass' && (o.every as number) > 0) throw new PolicyOptionValueError(`unionkv: agnosticScore=mass scores tokens at prefill end only; every must be 0, got ${o.every}`)
    if (o.afterRest === 'gates' && !gates) throw new PolicyOptionValueError('unionkv: afterRest=gates needs gatesFile (TRIM-KV\'s retention gates)')
    // with another step 1 (or none) afterRest would do nothing
    const floorless = floorBlocker(o)
    if (o.afterRest !== 'auto' && floorless) throw new PolicyOptionValueError(`unionkv: afterRest=${o.afterRest} acts only where afterFloor binds, which it cannot with ${floorless}`)
    if (o.bits !== null && o.bits !== undefined) {
      if (![2, 4, 8].includes(o.bits as number)) throw new PolicyOptionValueError(`unionkv: bits must be 2, 4 or 8, got ${o.bits}`)
      if (o.tokens !== null && o.tokens !== undefined) throw new PolicyOptionValueError(`unionkv: with bits=${o.bits} the budget is a share of the cache's bytes: give budget, not tokens=${o.tokens}`)
      // packed rows cannot be evicted one by one during decoding (compose.ts)
      if ((o.every as number) > 0) throw new PolicyOptionValueError(`unionkv: bits=${o.bits} packs the kept tokens at prefill end; every must be 0, got ${o.every}`)
    }
    if ((o.lagShare as number) > 0 && !gates && o.agnosticScore === 'lag') throw new PolicyOptionValueError(`unionkv: lagShare=${o.lagShare} needs gatesFile or agnosticScore other than lag (with lag, agnostic is LagKV's share)`)
  },
  create(o, model) {
    const local = o.local as number
    const contrastSpan = o.contrast as number
    const contrastShare = contrastSpan > 0 ? (o.contrastShare as number) : 0
    const span = o.span as number
    const agnostic = o.agnostic as number
    const sinks = o.sinks as number
    const window = o.window as number
    const lag = o.lag as number
    const gates = o.gatesFile ? readGatesFile(o.gatesFile as string) : undefined
    if (gates) checkGates(gates, model, 'unionkv')
    const lagShare = o.lagShare as number
    const split = o.agnosticScore === 'keydiff-lag'
    const agnosticScore = split ? 'keydiff' : (o.agnosticScore as 'lag' | 'keydiff' | 'mass')
    // unset (null or absent): agnostic's share in both loops
    const afterAgnostic = typeof o.afterAgnostic === 'number' ? o.afterAgnostic : null
    const afterTail = o.afterTail as 'off' | 'floor' | 'always'
    const afterFloor = o.afterFloor as number
    const lagTail = o.lagTail as boolean
    const floorCanBind = floorBlocker(o) === null
    const afterRest = o.afterRest === 'auto' ? (gates ? 'gates' : 'votes') : (o.afterRest as 'votes' | 'gates' | 'keydiff')
    const agnosticOf = (ctx: PolicyContext, l: number, h: number, by: 'gates' | 'lag' | 'keydiff' | 'mass', tail = false): Float32Array => {
      // the ranked tail only where the tail comes first: elsewhere step 1 is kvpress's LagKV score
      const n = ctx.cache.length(l, h)
      const s = by === 'gates' ? retentionScores(gates!, ctx, l, h)
        : by === 'keydiff' ? keyDiffScores(ctx.cache.readKeys(l, h), n, model.headDim, sinks, lag, -Infinity, o.blockRank as boolean)
          : by === 'mass' ? massScores(massOf(ctx, l, h, n), n, sinks, lag, -Infinity)
            : lagScores(ctx.cache.readKeys(l, h), ctx.cache.readValues(l, h), n, model.headDim, lag, sinks, -Infinity, tail && lagTail)
      const pooled = span > 1 && by !== 'gates' ? maxPoolScored(s, span, -Infinity) : s
      // LagKV scores no slot of its last full partition and remainder: ranked above its ranks ([0, 1)), latest first
      if (tail && by === 'lag') for (let i = n - 1; i >= sinks && pooled[i] === -Infinity; i--) pooled[i] = 1 + i / n
      pooled.fill(Infinity, 0, Math.min(sinks, n)).fill(Infinity, Math.max(0, n - window))
      return pooled
    }
    const massOf = (ctx: PolicyContext, l: number, h: number, n: number): Float32Array => {
      const m = headMass(ctx.hooks[l], model.kvHeads, h, n)
      if (!m) throw new Error(`unionkv: layer ${l} head ${h}: no attention mass for ${n} slots (needs.prefillAttentionMass)`)
      return m
    }
    const bits = typeof o.bits === 'number' ? o.bits : null
    // with bits each head is sized from the tokens it holds itself: after a part that leaves the layers
    // different counts (WindowKV's layer groups) head (0, 0)'s count held more than the budget's bytes
    const packedOf = bits === null ? null
      : (ctx: PolicyContext, l: number, h: number) => packedTokensPerHead(Math.max(1, ctx.cache.length(l, h)), budgetFrom(o).ratio!, FORMATS[bits], model.headDim, ctx.cache.options.kvDtype ?? 'float32')
    // the fewest any head keeps: the session skips compressing only where every head already fits
    const packedPerHead = packedOf === null ? undefined
      : (_n: number, ctx: PolicyContext) => Math.min(...Array.from({ length: model.layers * model.kvHeads }, (_, i) => packedOf(ctx, Math.floor(i / model.kvHeads), i % model.kvHeads)))
    const evict = evictionPolicy(() => {
      // per request: the scorer holds the decode-time observation window
      const scorer = snapScorer(o, model)
      return {
        name: 'unionkv', budget: budgetFrom(o), every: o.every as number, ...scorer,
        ...(packedPerHead ? { perHead: packedPerHead } : {}),
        // the union is a maximum over heads slot by slot (and the gates read each token's hidden state):
        // after a part that left each head its own tokens it mixed different tokens, silently (a byte
        // budget then sized every head from head (0, 0)'s count and held more than its share)
        traits: { readsPrompt: 'shared-slots' as const },
        needs: { ...scorer.needs, ...(gates ? { hiddenStates: true } : {}), ...(agnosticScore === 'mass' && agnostic > 0 && !gates ? { prefillAttentionMass: true } : {}) },
        keepModel(ctx, votes, perHead) {
          // the prompt's last queries are the context's own when its question is prefilled afterwards
          const questionAfter = (ctx.promptAfter ?? 0) > 0 && ctx.step === 0
          const base = questionAfter && afterAgnostic !== null ? afterAgnostic : agnostic
          const flat = votes.flat()
          const contrasted = contrastShare > 0 ? combine(flat.map((v) => contrastVotes(v, contrastSpan)), 'max') : null
          const union = combine(flat, 'max')
          return votes.map((layer, l) => {
            const own = combine(layer, 'sum')
            return layer.map((_, h) => {
              const C = packedOf ? packedOf(ctx, l, h) : perHead
              // the floor counts the prompt's tokens (every head holds them all at prefill end)
              const floorable = questionAfter && C > 0 && floorCanBind
              const lagFloor = floorable ? Math.min(1, (afterFloor * ctx.cache.length(0, 0)) / C) : 0
              const floored = lagFloor > base
              const tail = questionAfter && (afterTail === 'always' || (afterTail === 'floor' && floored))
              const k = new Uint8Array(ctx.cache.length(l, h))
              if (floored) {
                // LagKV's density first, then the rest by afterRest (the votes below by default)
                fill(ctx.ops, agnosticOf(ctx, l, h, 'lag', tail), k, Math.round(lagFloor * C))
                if (afterRest !== 'votes') fill(ctx.ops, agnosticOf(ctx, l, h, afterRest, false), k, C - held(k))
              } else {
                const first = split && !gates ? base / 2 : base
                if (first > 0) fill(ctx.ops, agnosticOf(ctx, l, h, gates ? 'gates' : agnosticScore, tail), k, Math.round(first * C))
                const second = split && !gates ? base / 2 : lagShare
                if (second > 0) fill(ctx.ops, agnosticOf(ctx, l, h, 'lag', tail), k, Math.round((first + second) * C) - held(k))
              }
              if (contrasted) fill(ctx.ops, contrasted, k, Math.round(contrastShare * C))
              fill(ctx.ops, union, k, Math.round((1 - local) * C) - held(k))
              fill(ctx.ops, own, k, C - held(k))
              return Int32Array.from(k.keys()).filter((i) => k[i] === 1)
            })
          })
        },
      }
    })
    if (bits === null) return evict
    // named as the user wrote it: errors about the composite name 'unionkv:bits=4', not its inner 'unionkv+kivi'
    return { ...composePolicies([evict, createKivi({ bits, groupSize: PACKED_GROUP, residual: 0 })]), name: `unionkv:bits=${bits}` }
  },
}

/**
 * KVzip (Kim et al. 2025, "KVzip: Query-Agnostic KV Cache Compression with Context Reconstruction",
 * arXiv 2505.23416), as kvpress's `KVzipPress` computes it (kvpress/presses/kvzip_press.py).
 * Query-agnostic: after the prefill the model is asked to repeat its context, and a KV pair is worth
 * what the reconstruction attends to it. The context is cut into chunks of `chunk` tokens; for each
 * chunk the runtime's own forward pass runs, on top of the cache,
 *   "\n\nRepeat the previous context exactly." (first chunk) or
 *   "\n\nRepeat the part of the previous context exactly, starting with" + its last `overlap` ids (later
 *   chunks), then "\n" and the chunk's own ids,
 * and every query of that pass scores the keys of [first `sinks` tokens, the chunk, the pass itself]
 * (softmax over those alone, causal inside the pass); a context token's score is the largest
 * probability any query of its KV head's group gives it. KVzip+ (`plus`) divides each query row by the
 * norm of its attention input and multiplies each key column by ||W_o,g^T v||_2, what the value writes
 * through the head's output projection. The pass's tokens leave the cache afterwards; its time counts in
 * `compressMs`: mostly the pass's own forward, whose attention over the context and the pass is about
 * 2.5x a prefill's at 4096 tokens (kvpress warns of 2-3x); the scores' softmax rows and column maxima
 * (wasm columnMax) are the rest. The scores do not depend on the budget, and plain and plus scores come
 * from one pass (kvzipScoresShared; evaluate shares them across its kvzip policies: kvzip-share.ts).
 * Budget: one selection over every layer and KV head (`layerwise=false`, kvpress's default) or per layer
 * across its heads, of floor(budget x n) tokens per head on average (kvpress counts N - floor(N x (1 -
 * budget)) of the N entries, a few more); kvpress masks the rest, here the per-head keep lists are stored
 * ragged and the memory is freed. kvpress reads the separators from
 * the model's chat template; kvkit prompts are raw text (the template-less case: no prefix, suffix "\n").
 */
import { budgetFrom, budgetOptions, keepAdaptive, tokensPerHead, type Budget } from './budget.js'
import { evictionPolicy, type EvictionMethod } from './evict.js'
import { subBuf } from './selection.js'
import type { PolicyDefinition } from './registry.js'
import type { OptionValue } from './spec.js'
import type { ExtensionHooks, Policy, PolicyContext, PolicyModel, PolicyRuntime } from './types.js'

export interface RepeatPrompts {
  first: number[]
  next: number[]
  suffix: number[]
}

const prompts = new WeakMap<PolicyModel['tokenizer'], RepeatPrompts>()
const ROWS = 128

export interface KVzipOptions {
  sinks: number
  chunk: number
  overlap: number
  plus: boolean
}

/** the reconstruction scores of every (layer, KV head) of the cache at prefill end */
export async function kvzipScores(ctx: PolicyContext, p: RepeatPrompts, o: KVzipOptions): Promise<Float32Array[][]> {
  return (await kvzipScoresShared(ctx, p, [o]))[0]
}

/** A set of KVzip variants that cannot share one reconstruction pass (their chunks or prompts differ). */
export class KVzipVariantError extends Error {
  override name = 'KVzipVariantError'
}

/**
 * The reconstruction scores ([layer][KV head][slot]) of several variants from one reconstruction: the
 * repeat passes and their attention do not depend on KVzip+'s normalization, which kvpress applies to
 * each probability before the max (score_kvzip: divide by ||h||, multiply by ||W_o v||, then amax), so
 * the plain and the plus scores are two maxima over the same softmax rows. Variants must agree on
 * sinks, chunk and overlap (KVzipVariantError otherwise); the result is each variant's
 * kvzipScores, bit for bit, in the order given. It yields the event loop (`runtime.pause`) before each
 * pass and between the layers a pass scores, and rejects with the request's abort there; the errors
 * above are thrown at the call, before any pass.
 */
export function kvzipScoresShared(ctx: PolicyContext, p: RepeatPrompts, variants: readonly KVzipOptions[]): Promise<Float32Array[][][]> {
  const rt = ctx.runtime
  if (!rt) throw new Error('KVzip needs the runtime\'s forward pass (PolicyContext.runtime), which this context lacks')
  if (variants.length === 0) throw new KVzipVariantError('kvzipScoresShared: no variant given')
  const o = variants[0]
  for (const v of variants) {
    if (v.sinks !== o.sinks || v.chunk !== o.chunk || v.overlap !== o.overlap)
      throw new KVzipVariantError(`KVzip variants share one reconstruction only with the same sinks, chunk and overlap: got ${JSON.stringify(o)} and ${JSON.stringify(v)}`)
  }
  return reconstruct(ctx, rt, p, o, variants.map((v) => v.plus))
}

/** the passes of kvzipScoresShared, of checked variants: the scores of each `plus` flag */
async function reconstruct(ctx: PolicyContext, rt: PolicyRuntime, p: RepeatPrompts, o: KVzipOptions, plus: boolean[]): Promise<Float32Array[][][]> {
  const { layers, kvHeads } = ctx.model
  const ids = rt.contextIds
  const n = ids.length
  const scores = plus.map(() => Array.from({ length: layers }, () => Array.from({ length: kvHeads }, () => new Float32Array(n))))
  for (let a = 0; a < n; a += o.chunk) {
    const b = Math.min(n, a + o.chunk)
    const lead = a === 0 ? p.first : [...p.next, ...ids.slice(Math.max(0, a - o.overlap), a)]
    const repeat = [...lead, ...p.suffix, ...ids.slice(a, b)]
    // one pass's forward is not cut (its rows must all be in the cache while they are scored); the
    // turns it yields are before it and between the layers it scores
    await rt.pause()
    await rt.extendAsync(repeat, async (hooks, c) => {
      for (let l = 0; l < layers; l++) {
        if (l > 0) await rt.pause()
        for (let h = 0; h < kvHeads; h++) scoreChunk(c, hooks[l], h, n, a, b, Math.min(o.sinks, a), plus, scores.map((s) => s[l][h]))
      }
    })
  }
  return scores
}

/**
 * one KV head: max over the pass's queries of their attention to the chunk's keys (slots a..b-1), into
 * outs[i] for variant i (KVzip+ where plus[i])
 */
function scoreChunk(ctx: PolicyContext, hook: ExtensionHooks, h: number, n: number, a: number, b: number, sink: number, plus: boolean[], outs: Float32Array[]): void {
  const { ops, cache, model } = ctx
  const { group, headDim: d } = model
  const heap = ops.heap
  const l = hook.layer
  const T = hook.positions.length
  const m = sink + (b - a) + T
  const pick = (x: Float32Array) => {
    const sub = new Float32Array(m * d)
    sub.set(x.subarray(0, sink * d))
    sub.set(x.subarray(a * d, b * d), sink * d)
    sub.set(x.subarray(n * d, (n + T) * d), (sink + b - a) * d)
    return sub
  }
  const anyPlus = plus.some(Boolean)
  // KVzip+'s column weights of the chunk's keys only (the other columns are never scored): each value
  // row's norm is its own matmul row, the same bits whatever rows go with it
  const vNorms = anyPlus ? heap.f32From(ctx.runtime!.valueOutputNorms(l, h, cache.readValues(l, h).subarray(a * d, b * d), 2)) : null
  const inNorms = anyPlus ? heap.f32From(hook.inputNorms) : null
  const kb = heap.f32From(pick(cache.readKeys(l, h)))
  const table = heap.allocI32(1)
  const qb = heap.allocF32(ROWS * d)
  const logits = heap.allocF32(ROWS * m)
  const best = plus.map(() => heap.allocF32(b - a))
  try {
    for (const x of best) x.view.fill(0)
    table.view[0] = kb.ptr
    for (let g = 0; g < group; g++) {
      const qh = h * group + g
      for (let r = 0; r < T; r += ROWS) {
        const R = Math.min(ROWS, T - r)
        // causal inside the pass: its query t sees the pass's keys 0..t, so the block's rows need the
        // first m - T + r + R keys only. Rounded up to four, and all m where that would reach past
        // m's last four, so each kept score and softmax sum sees the arithmetic (key pairs, four lane
        // sums) of a row of all m keys: the scores equal those of the full rows bit for bit.
        const need = m - T + r + R
        const w = ((need + 3) & ~3) <= (m & ~3) ? (need + 3) & ~3 : m
        qb.view.set(hook.queries.subarray((qh * T + r) * d, (qh * T + r + R) * d))
        ops.scoreKeys(qb, R, { kTable: table.ptr, vTable: table.ptr, pageTokens: m, n: w, d }, 1 / Math.sqrt(d), logits)
        const L = logits.view
        for (let t = 0; t < R; t++) L.fill(-Infinity, t * w + m - T + r + t + 1, (t + 1) * w)
        ops.softmaxRows(logits, R, w)
        plus.forEach((pl, i) => ops.columnMax(logits, R, w, sink, b - a, best[i], pl ? { rowNorm: subBuf(inNorms!, r, R), colWeight: subBuf(vNorms!, g * (b - a), b - a) } : {}))
      }
    }
    best.forEach((x, i) => outs[i].set(x.view, a))
  } finally {
    for (const x of best) x.free()
    logits.free()
    qb.free()
    table.free()
    kb.free()
    inNorms?.free()
    vNorms?.free()
  }
}

/** The repetition prompts, encoded once per tokenizer. */
export function repeatPrompts(t: PolicyModel['tokenizer']): RepeatPrompts {
  let p = prompts.get(t)
  if (!p) {
    p = {
      first: t.encode('\n\nRepeat the previous context exactly.'),
      next: t.encode('\n\nRepeat the part of the previous context exactly, starting with'),
      suffix: t.encode('\n'),
    }
    prompts.set(t, p)
  }
  return p
}

/**
 * KVzip's selection over given reconstruction scores ([layer][KV head][slot]): the scores do not depend
 * on the budget, so one reconstruction can serve several budgets (the accuracy bench does). A session's
 * prefill end is asynchronous (onPrefillEndAsync): the reconstruction yields the event loop and sees an abort
 * (kvzipScoresShared); the selection after it is the eviction family's, synchronous.
 */
export function kvzipSelection(budget: Budget, layerwise: boolean, scoresOf: (ctx: PolicyContext) => Promise<Float32Array[][]>): Policy {
  // this request's reconstruction scores, made before the selection reads them
  const method = (held: { scores: Float32Array[][] | null }) => (): EvictionMethod => ({
    name: 'kvzip', needs: {}, budget, every: 0, traits: { readsPrompt: 'whole' },
    score: (_ctx, layer) => {
      if (!held.scores) throw new Error('KVzip: a head was scored before the reconstruction ran')
      return held.scores[layer]
    },
    ...(layerwise
      ? { keep: (ctx, s, perHead) => keepAdaptive(ctx.ops, s, perHead * s.length, 0) }
      : {
          keepModel(ctx, s, perHead) {
            const flat = s.flat()
            const keep = keepAdaptive(ctx.ops, flat, perHead * flat.length, 0)
            return s.map((row, l) => keep.slice(l * row.length, (l + 1) * row.length))
          },
        }),
  })
  const shape = evictionPolicy(method({ scores: null }))
  return {
    ...shape,
    start() {
      const held = { scores: null as Float32Array[][] | null }
      const { onPrefillEnd, ...session } = evictionPolicy(method(held)).start()
      return {
        ...session,
        async onPrefillEndAsync(ctx) {
          // every head holds the n prompt tokens: a budget that covers them scores none, and skips the
          // extra forward pass (at prefill end only: KVzip has no `every`)
          const n = ctx.cache.length(0, 0)
          if (n > 0 && (budget.tokens ?? tokensPerHead(budget, n)) < n) held.scores = await scoresOf(ctx)
          return onPrefillEnd!(ctx)
        },
      }
    },
  }
}

export const kvzip: PolicyDefinition = {
  name: 'kvzip',
  description: 'KVzip: query-agnostic; scores each KV pair by the attention it gets while the model repeats its context (one extra forward pass)',
  stage: 'eviction',
  options: [...budgetOptions.filter((x) => x.name !== 'every'),
    { name: 'layerwise', type: 'boolean', default: false, description: 'one selection per layer (true) instead of one across every layer and head' },
    { name: 'sinks', type: 'integer', default: 4, min: 0, description: 'first tokens whose keys every chunk\'s reconstruction also scores against' },
    { name: 'chunk', type: 'integer', default: 2048, min: 1, description: 'context tokens repeated per reconstruction pass' },
    { name: 'overlap', type: 'integer', default: 8, min: 0, description: 'ids of the previous chunk quoted to start a later chunk\'s repetition' },
    { name: 'plus', type: 'boolean', default: false, description: 'KVzip+ normalization: divide by the query\'s input norm, weigh by the value\'s output-projection norm' }],
  create(o) {
    const opts = kvzipOptions(o)
    return kvzipPolicy(o, (ctx, repeat) => kvzipScores(ctx, repeat, opts))
  },
}

/**
 * The kvzip policy of resolved options whose reconstruction scores come from `scoresOf` (its own
 * reconstruction, or one shared with other budgets: kvzip-share.ts); the repetition prompts are encoded
 * in `prepare`.
 */
export function kvzipPolicy(o: Record<string, OptionValue>, scoresOf: (ctx: PolicyContext, repeat: RepeatPrompts) => Promise<Float32Array[][]>): Policy {
  let repeat: RepeatPrompts | undefined
  const policy = kvzipSelection(budgetFrom(o), o.layerwise as boolean, async (ctx) => {
    if (!repeat) throw new Error('KVzip: prepare(model) was not awaited before prefill end (it encodes the repetition prompts)')
    return scoresOf(ctx, repeat)
  })
  return {
    ...policy,
    async prepare(model: PolicyModel) {
      repeat = repeatPrompts(model.tokenizer)
    },
  }
}

/** the scoring options of a resolved kvzip spec */
export function kvzipOptions(o: Record<string, OptionValue>): KVzipOptions {
  return { sinks: o.sinks as number, chunk: o.chunk as number, overlap: o.overlap as number, plus: o.plus as boolean }
}

/**
 * RazorAttention (Tang et al., 2024): a few "retrieval heads" keep the whole cache, the others keep only
 * the attention sinks, a recent window and one compensation token.
 *
 *   offline, once per model: run the model on a random token sequence repeated twice; for each query i of
 *   the second copy (its earlier copy at i - L):
 *     echo(head)      = mean_i P[i, i - L]        attention to the earlier copy of the same token
 *     induction(head) = mean_i P[i, i - L + 1]    attention to the token after the earlier copy
 *   retrieval heads = top 14% by induction + top 1% by echo
 *   at prefill end, every other head keeps 4 sinks + the recent window, and appends one compensation token
 *   whose key and value are the means of the dropped keys and values
 *
 * GQA: the cache is per KV head, so heads are ranked per KV head by the largest score among the query
 * heads that read it (a KV head is retrieval if any of its query heads is strongly retrieval), and the
 * 14% / 1% are shares of the KV heads (at least one of each). Budget: with `budget` (ratio) or `tokens`,
 * the window is what is left per non-retrieval head after the retrieval heads' full share, sinks and the
 * compensation token (never negative: a budget below the retrieval heads' share keeps window 0 and is
 * exceeded). Without a budget the window is `window` tokens (default 512).
 * The compensation token's position label is the mean dropped position (it only matters for pre-RoPE keys).
 */
import { nodeFs } from '../backend/node-fs.js'
import type { Decision, HeadDecision } from '../cache/types.js'
import { budgetOnly, checkBudget, keepCount } from './budget.js'
import { meanOfEvicted } from './evict.js'
import { attentionProbs, groupObservationQueries } from './observed-attention.js'
import { mulberry32 } from './seeded-random.js'
import type { BudgetOptions, ModelShape, Policy, PolicyContext, PolicyModel } from './types.js'
import type { PolicyDefinition } from './registry.js'
import { statelessPolicy } from './stateless.js'
import { checkReadableFile } from './files.js'
import { PolicyFileError, PolicyOptionValueError } from './errors.js'

/** per query head [layers * qHeads], row-major by layer */
export interface RetrievalScores {
  echo: Float32Array
  induction: Float32Array
}

export interface RazorOptions extends BudgetOptions {
  /** explicit retrieval KV heads as [layer, kvHead] pairs (skips calibration) */
  heads?: [number, number][]
  /** calibration result to select heads from */
  scores?: RetrievalScores
  inductionShare?: number
  echoShare?: number
  sinks?: number
  window?: number
  /**
   * a text file to calibrate on (its first 256 tokens, repeated) instead of random tokens; the fixture
   * model shows induction on natural text only
   */
  calibrationFile?: string
}

/** the parts of a Model that calibration uses */
export interface CalibrationModel {
  readonly config: ModelShape & { vocab: number; bosTokenId: number | null }
  generate(prompt: number[], options: { maxNewTokens: number; policy: Policy }): { result: Promise<unknown> }
}

export interface CalibrationOptions {
  /** length of the random sequence that is repeated (default 256) */
  length?: number
  seed?: number
  /**
   * the block to repeat instead of random tokens (its length replaces `length`): a model that shows no
   * induction on random tokens may on natural text (the fixture model does, weakly)
   */
  tokens?: number[]
}

const calibrated = new WeakMap<object, Map<string, RetrievalScores>>()

/** Echo and induction scores of every query head, from one forward pass; cached per model and options. */
export async function calibrateRazorAttention(model: CalibrationModel, options: CalibrationOptions = {}): Promise<RetrievalScores> {
  const L = options.tokens?.length ?? options.length ?? 256
  const seed = options.seed ?? 0
  if (!(Number.isInteger(L) && L >= 2)) throw new RangeError(`razorattention: calibration length must be an integer >= 2, got ${L}`)
  const { vocab, bosTokenId } = model.config
  if (options.tokens?.some((t) => !(Number.isInteger(t) && t >= 0 && t < vocab))) throw new RangeError(`razorattention: calibration tokens must be ids in [0, ${vocab})`)
  const key = options.tokens ? `tokens:${options.tokens.join(',')}` : `${L}:${seed}`
  const memo = calibrated.get(model) ?? new Map<string, RetrievalScores>()
  calibrated.set(model, memo)
  const hit = memo.get(key)
  if (hit) return hit
  const rand = mulberry32(seed)
  // random ordinary tokens (skipping the first 16 ids, where special tokens live)
  const copy = options.tokens ?? Array.from({ length: L }, () => 16 + Math.floor(rand() * (vocab - 16)))
  // the runtime prefills all but the last prompt token: a third copy's first token goes last, so the
  // prefill (and the observation window of L queries) covers the second copy exactly
  const prompt = [...(bosTokenId === null ? [] : [bosTokenId]), ...copy, ...copy, copy[0]]
  let scores: RetrievalScores | null = null
  const probe = statelessPolicy({
    name: 'razorattention-calibration',
    needs: { observationWindow: L },
    onPrefillEnd(ctx) {
      scores = repeatScores(ctx, L)
      return null
    },
  })
  await model.generate(prompt, { maxNewTokens: 1, policy: probe }).result
  if (!scores) throw new Error('razorattention: the model never called the calibration probe at prefill end')
  memo.set(key, scores)
  return scores
}

/**
 * Echo and induction scores from a cache holding a sequence whose last 2L tokens are a random block repeated,
 * with the last L queries (the second copy) as the observation window.
 */
export function repeatScores(ctx: PolicyContext, L: number): RetrievalScores {
  const { model, cache } = ctx
  const echo = new Float32Array(model.layers * model.qHeads)
  const induction = new Float32Array(model.layers * model.qHeads)
  for (let layer = 0; layer < model.layers; layer++) {
    for (let h = 0; h < model.kvHeads; h++) {
      const pos = cache.positions(layer, h)
      const slot = new Map(Array.from(pos, (p, i) => [p, i]))
      const { queries, positions, rows, w } = groupObservationQueries(ctx.hooks[layer], h, model.group, model.headDim, L)
      if (w < L) throw new Error(`razorattention: calibration needs ${L} observation queries, got ${w}`)
      const P = attentionProbs(ctx.ops, cache.view(layer, h), pos, queries, rows, positions, 1 / Math.sqrt(model.headDim))
      const n = pos.length
      for (let g = 0; g < model.group; g++) {
        let e = 0, ind = 0
        for (let i = 0; i < L; i++) {
          const r = g * L + i
          const q = positions[r]
          e += P[r * n + (slot.get(q - L) ?? -1)] ?? 0
          ind += P[r * n + (slot.get(q - L + 1) ?? -1)] ?? 0
        }
        echo[layer * model.qHeads + h * model.group + g] = e / L
        induction[layer * model.qHeads + h * model.group + g] = ind / L
      }
    }
  }
  return { echo, induction }
}

/** retrieval KV heads: top shares by induction and by echo, a KV head scoring as its best query head */
export function retrievalHeads(scores: RetrievalScores, model: ModelShape, inductionShare = 0.14, echoShare = 0.01): [number, number][] {
  const nKV = model.layers * model.kvHeads
  if (scores.echo.length !== model.layers * model.qHeads) throw new RangeError(`razorattention: scores cover ${scores.echo.length} query heads, the model has ${model.layers * model.qHeads}`)
  const perKV = (s: Float32Array) => Array.from({ length: nKV }, (_, i) => Math.max(...s.subarray(i * model.group, (i + 1) * model.group)))
  const top = (s: number[], share: number) => Array.from(s.keys()).sort((a, b) => s[b] - s[a] || a - b).slice(0, Math.max(1, Math.round(share * nKV)))
  const picked = new Set([...top(perKV(scores.induction), inductionShare), ...top(perKV(scores.echo), echoShare)])
  return [...picked].sort((a, b) => a - b).map((i) => [Math.floor(i / model.kvHeads), i % model.kvHeads])
}

export interface RazorPolicy extends Policy {
  /** runs the calibration on a model (cached per model) and uses its retrieval heads */
  calibrate(model: CalibrationModel, options?: CalibrationOptions): Promise<[number, number][]>
}

export function createRazorAttention(options: RazorOptions = {}): RazorPolicy {
  const sinks = options.sinks ?? 4
  const inductionShare = options.inductionShare ?? 0.14
  const echoShare = options.echoShare ?? 0.01
  checkBudget('razorattention', options)
  if (!(Number.isInteger(sinks) && sinks >= 0)) throw new RangeError(`razorattention: sinks must be a non-negative integer, got ${sinks}`)
  if (options.window !== undefined && !(Number.isInteger(options.window) && options.window >= 0)) throw new RangeError(`razorattention: window must be a non-negative integer, got ${options.window}`)
  for (const s of [inductionShare, echoShare]) if (!(s >= 0 && s <= 1)) throw new RangeError(`razorattention: head shares must be in [0, 1], got ${s}`)
  // calibrated retrieval heads per model (keyed by its config, the object sessions see as ctx.model):
  // configuration derived once per model, shared by every request on it
  const calibratedHeads = new WeakMap<object, [number, number][]>()
  let lastCalibrated: [number, number][] | undefined

  function headsFor(model: ModelShape): [number, number][] | null {
    if (options.heads) return options.heads
    if (options.scores) return retrievalHeads(options.scores, model, inductionShare, echoShare)
    return calibratedHeads.get(model) ?? lastCalibrated ?? null
  }

  return {
    name: 'razorattention',
    needs: {},
    async calibrate(model, calib) {
      const scores = await calibrateRazorAttention(model, calib)
      const heads = retrievalHeads(scores, model.config, inductionShare, echoShare)
      calibratedHeads.set(model.config, heads)
      lastCalibrated = heads
      return heads
    },
    async prepare(model) {
      if (options.heads || options.scores || calibratedHeads.has(model.config)) return
      const tokens = options.calibrationFile ? await calibrationTokens(model, options.calibrationFile) : undefined
      await this.calibrate(model, tokens ? { tokens } : {})
    },
    start: () => ({
      onPrefillEnd(ctx: PolicyContext): Decision | null {
        const { model, cache } = ctx
        const chosen = headsFor(model)
        if (!chosen) throw new Error('razorattention: no retrieval heads: pass heads=..., or call calibrate(model) first')
        for (const [l, h] of chosen) {
          if (!(l >= 0 && l < model.layers && h >= 0 && h < model.kvHeads)) throw new RangeError(`razorattention: retrieval head ${l}.${h} is not in a ${model.layers} x ${model.kvHeads} model`)
        }
        const full = new Set(chosen.map(([l, h]) => l * model.kvHeads + h))
        const out: HeadDecision[] = []
        for (let layer = 0; layer < model.layers; layer++) {
          for (let h = 0; h < model.kvHeads; h++) {
            if (full.has(layer * model.kvHeads + h)) continue
            const n = cache.length(layer, h)
            const d = compressHead(ctx, layer, h, sinks, windowFor(n, full.size, model.layers * model.kvHeads))
            if (d) out.push(d)
          }
        }
        return out.length ? { heads: out } : null
      },
    }),
  }

  function windowFor(n: number, retrieval: number, total: number): number {
    const budget = keepCount(options, n)
    if (budget === null) return options.window ?? 512
    // a budget that holds the whole prompt keeps every head whole
    if (budget >= n) return n
    const share = Math.floor((budget * total - retrieval * n) / Math.max(1, total - retrieval))
    return Math.max(0, share - sinks - 1)
  }
}

async function calibrationTokens(model: PolicyModel, file: string): Promise<number[]> {
  let text: string
  try {
    // in a browser the file system is missing here (the check at creation has none to look at): a PolicyFileError too
    text = await (await nodeFs('a calibration file')).readFile(file, 'utf8')
  } catch (e) {
    throw new PolicyFileError(`razorattention: cannot read calibrationFile ${JSON.stringify(file)}: ${(e as Error).message}`)
  }
  const ids = model.tokenizer.encode(text).slice(0, 256)
  if (ids.length < 2) throw new PolicyFileError(`razorattention: calibrationFile ${JSON.stringify(file)} has fewer than 2 tokens (${ids.length}): the calibration repeats a text of at least 2`)
  return ids
}

/** sinks + recent window, plus the mean of the dropped keys and values as one extra token */
export function compressHead(ctx: PolicyContext, layer: number, h: number, sinks: number, window: number): HeadDecision | null {
  const n = ctx.cache.length(layer, h)
  const first = Math.min(sinks, n)
  const last = Math.max(first, n - window)
  if (last <= first) return null
  const keep = new Int32Array(n - (last - first))
  for (let i = 0; i < first; i++) keep[i] = i
  for (let i = last; i < n; i++) keep[first + i - last] = i
  return { layer, head: h, keep, extra: [meanOfEvicted(ctx, layer, h, keep)] }
}

/** "0.1;3.0" (layer.kvHead pairs separated by ; or spaces) */
export function parseHeadList(s: string): [number, number][] {
  return s.split(/[;\s]+/).filter(Boolean).map((x) => {
    const m = /^(\d+)\.(\d+)$/.exec(x)
    if (!m) throw new PolicyOptionValueError(`razorattention: head ${JSON.stringify(x)} is not LAYER.KVHEAD (e.g. heads=0.1;3.0)`)
    return [Number(m[1]), Number(m[2])]
  })
}

export const razorattention: PolicyDefinition = {
  name: 'razorattention',
  description: 'RazorAttention: retrieval heads (calibrated induction/echo heads) keep everything; the rest keep 4 sinks + a window + one compensation token',
  stage: 'eviction',
  options: [
    ...budgetOnly(0.25),
    { name: 'heads', type: 'string', default: null, description: 'retrieval KV heads as LAYER.HEAD;LAYER.HEAD (else calibrated on first use, once per model)' },
    { name: 'calibrationFile', type: 'string', default: null, readsFile: true, description: 'text file to calibrate on (first 256 tokens repeated) instead of random tokens' },
    { name: 'sinks', type: 'integer', default: 4, min: 0, description: 'attention-sink tokens kept by every head' },
    { name: 'inductionShare', type: 'number', default: 0.14, min: 0, max: 1, description: 'share of KV heads kept whole for induction' },
    { name: 'echoShare', type: 'number', default: 0.01, min: 0, max: 1, description: 'share of KV heads kept whole for echo' },
  ],
  check(o) {
    if (typeof o.heads === 'string') parseHeadList(o.heads)
  },
  create(o, model) {
    const { heads, ...rest } = o
    if (typeof rest.calibrationFile === 'string') checkReadableFile('razorattention: calibrationFile', rest.calibrationFile)
    const list = typeof heads === 'string' ? parseHeadList(heads) : undefined
    for (const [l, h] of list ?? []) {
      if (!(l < model.layers && h < model.kvHeads)) throw new PolicyOptionValueError(`razorattention: heads=${heads}: head ${l}.${h} is not in a ${model.layers}-layer model with ${model.kvHeads} KV heads`)
    }
    return createRazorAttention({ ...(rest as RazorOptions), heads: list })
  },
}

import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import { readLayers } from './chunk-kv.js'
import { AssembledContext } from './context-handle.js'
import { abortCheck, checkOptionNames, ReuseError } from './errors.js'

/** A target segment and the sources (indices into `sources`) it attends to. */
export interface GraphTarget {
  ids: readonly number[]
  sources: readonly number[]
}

export interface GraphInput {
  /** tokens every segment attends to (a system prompt); may be empty */
  prefix?: readonly number[]
  /** segments encoded independently after the prefix, all in one position range */
  sources: readonly (readonly number[])[]
  /** segments encoded after the sources' range, each attending to the prefix, its sources and itself */
  targets?: readonly GraphTarget[]
}

/** rows [from, to) of every layer of a cache, [T][kvHeads][headDim] a layer */
function rowsOf(cache: PagedKVCache, from: number, to: number): { k: Float32Array[]; v: Float32Array[] } {
  const { kvHeads, headDim: d } = cache.options
  const all = readLayers(cache)
  const w = kvHeads * d
  return { k: all.k.map((x) => x.slice(from * w, to * w)), v: all.v.map((x) => x.slice(from * w, to * w)) }
}

/** the context as Graph-KV lays it out, with each segment's first position (what a test or report checks) */
export interface GraphLayout {
  /** first position of each source (all the same: the end of the prefix) and of each target */
  sourceStart: number
  targetStarts: number[]
  /** first position after the context: prefix + the longest source + the targets */
  end: number
}

/**
 * Graph-KV (Wang et al., 2025, "Graph-KV: breaking sequence via injecting structural biases"): segments
 * with a source -> target graph instead of one sequence. Each source is encoded on its own after the
 * prefix, all sources in one position range (so the context grows by the longest source, not their
 * sum); each target is encoded attending only to the prefix, its own sources' KV and itself (a non-source
 * segment is absent from its cache, so its attention there is exactly zero), at positions after the
 * sources' range. The question that follows attends to everything, at positions after the targets.
 *
 * Use: `const ctx = await graphKV(model, { prefix, sources, targets })`, then
 * `model.generate([...ctx.ids, ...question], { reuse: ctx })`. The prefills run chunk by chunk on later
 * turns of the event loop: `signal` aborts between chunks (the promise rejects with its reason, nothing
 * stays allocated). Bad input throws at the call (ReuseError, ModelInputError), before any work.
 */
/** every field of GraphInput and of a target: a misspelt `target` left the graph without its targets, silently */
const GRAPH_INPUT_FIELDS: Record<keyof GraphInput, true> = { prefix: true, sources: true, targets: true }
const GRAPH_TARGET_FIELDS: Record<keyof GraphTarget, true> = { ids: true, sources: true }

export function graphKV(model: LlamaModel, input: GraphInput, options: { signal?: AbortSignal } = {}): Promise<AssembledContext & { layout: GraphLayout }> {
  checkOptionNames('graphKV', input, GRAPH_INPUT_FIELDS)
  checkOptionNames('graphKV: options', options, { signal: true })
  const check = abortCheck('graphKV', options.signal)
  if (input.targets !== undefined && !Array.isArray(input.targets as unknown)) throw new ReuseError(`graphKV: targets must be an array of { ids, sources }, got ${typeof input.targets}`)
  input.targets?.forEach((t, j) => checkOptionNames(`graphKV: targets[${j}]`, t, GRAPH_TARGET_FIELDS))
  const prefix = input.prefix ?? []
  const sources = input.sources
  const targets = input.targets ?? []
  if (!Array.isArray(sources) || sources.length === 0) throw new ReuseError('graphKV: sources must be a non-empty array of token arrays')
  if (prefix.length) model.checkIds(prefix, 'graphKV: prefix')
  sources.forEach((s, i) => model.checkIds(s, `graphKV: sources[${i}]`))
  targets.forEach((t, j) => {
    model.checkIds(t.ids, `graphKV: targets[${j}].ids`)
    if (!Array.isArray(t.sources) || t.sources.some((s) => !Number.isInteger(s) || s < 0 || s >= sources.length)) {
      throw new ReuseError(`graphKV: targets[${j}].sources must list source indices in [0, ${sources.length}), got ${JSON.stringify(t.sources)}`)
    }
  })
  const P = prefix.length
  const sourceStart = P
  const longest = Math.max(...sources.map((s) => s.length))
  const targetStarts: number[] = []
  let end = P + longest
  for (const t of targets) {
    targetStarts.push(end)
    end += t.ids.length
  }
  if (end >= model.config.maxPositions) throw new ReuseError(`graphKV: the context reaches position ${end}, leaving no room for a question (max_position_embeddings ${model.config.maxPositions})`)
  // a disposed model or a diffusion LM, refused at the call as the prefill would refuse it
  model.checkPrefill()
  return assemble(model, prefix, sources, targets, { sourceStart, targetStarts, end }, check)
}

async function assemble(model: LlamaModel, prefix: readonly number[], sources: readonly (readonly number[])[], targets: readonly GraphTarget[], layout: GraphLayout, check: () => void): Promise<AssembledContext & { layout: GraphLayout }> {
  const { sourceStart, targetStarts, end } = layout
  const P = prefix.length
  const base = model.newCache('post-rope', 64, 'float32')
  const cache = model.newCache('post-rope', 64, 'float32')
  try {
    if (P) await model.prefillChunked(prefix, base, 0, check)
    const put = (rows: { k: Float32Array[]; v: Float32Array[] }, first: number, T: number, into: PagedKVCache) => {
      const pos = Int32Array.from({ length: T }, (_, i) => first + i)
      rows.k.forEach((k, l) => into.append(l, k, rows.v[l], pos))
    }
    if (P) put(rowsOf(base, 0, P), 0, P, cache)
    // each source after the prefix alone, from a copy-on-write fork of the prefix's cache
    const sourceRows: { k: Float32Array[]; v: Float32Array[] }[] = []
    for (const s of sources) {
      const f = base.fork()
      try {
        await model.prefillChunked(s, f, sourceStart, check)
        sourceRows.push(rowsOf(f, P, P + s.length))
      } finally {
        f.dispose()
      }
    }
    sourceRows.forEach((r, i) => put(r, sourceStart, sources[i].length, cache))
    // each target over the prefix and its own sources only
    for (const [j, t] of targets.entries()) {
      const f = base.fork()
      try {
        for (const s of t.sources) put(sourceRows[s], sourceStart, sources[s].length, f)
        const at = f.length(0, 0)
        await model.prefillChunked(t.ids, f, targetStarts[j], check)
        put(rowsOf(f, at, at + t.ids.length), targetStarts[j], t.ids.length, cache)
      } finally {
        f.dispose()
      }
    }
    const ids = [...prefix, ...sources.flat(), ...targets.flatMap((t) => t.ids)]
    const ctx = new AssembledContext(model, ids, cache, end - ids.length) as AssembledContext & { layout: GraphLayout }
    ctx.layout = layout
    return ctx
  } catch (e) {
    cache.dispose()
    throw e
  } finally {
    base.dispose()
  }
}

/**
 * One KVzip reconstruction for every kvzip policy of an evaluation's sample. KVzip's scores (Kim et al.
 * 2025, arXiv 2505.23416; kvpress's KVzipPress) depend on the model, the context and the reconstruction
 * options (sinks, chunk, overlap, plus), never on the budget or `layerwise`; and KVzip+ only weighs the
 * same attention probabilities before the max, so plain and plus variants come from one pass
 * (kvzipScoresShared). An evaluation that runs kvzip at three budgets, with and without plus, then pays
 * for one reconstruction per sample instead of six, with the same kept sets.
 * The policies of one share keep the scores of the last context they saw (its ids and model shape), so
 * they stay correct if reused on another prompt: the scores are recomputed there. The first policy to
 * reach prefill end also pays for the others: their `compressMs` is the selection alone.
 */
import type { ModelShape, Policy, PolicyContext } from './types.js'
import { kvzipOptions, kvzipPolicy, kvzipScoresShared, type KVzipOptions, type RepeatPrompts } from './kvzip.js'
import { createPolicy, getPolicyDefinition, resolveOptions } from './registry.js'
import { parsePolicySpecs } from './spec.js'

/** the options that decide whether two variants can share one pass */
const passKey = (o: KVzipOptions) => `${o.sinks}/${o.chunk}/${o.overlap}`
const variantKey = (o: KVzipOptions) => `${passKey(o)}/${o.plus}`

export class KVzipShare {
  /** every variant asked for, by pass: a pass computes all of its variants at once */
  private readonly wanted = new Map<string, KVzipOptions[]>()
  // promises, so that sessions reaching prefill end while a reconstruction runs wait for it
  private readonly scores = new Map<string, Promise<Float32Array[][]>>()
  private ids: readonly number[] = []
  private model: ModelShape | null = null

  /**
   * createPolicy(spec, model), with a spec that is one kvzip policy (no composition) taking its scores
   * from this share; create every policy of the sample before running any, so that the first
   * reconstruction serves them all. Errors: createPolicy's, for any spec.
   */
  policy(spec: string, model: ModelShape): Policy | null {
    const own = createPolicy(spec, model)
    const parts = parsePolicySpecs(spec)
    if (parts.length !== 1 || parts[0].name !== 'kvzip') return own
    const o = resolveOptions(getPolicyDefinition('kvzip'), parts[0].options, parts[0].written)
    const opts = kvzipOptions(o)
    const list = this.wanted.get(passKey(opts)) ?? []
    if (!list.some((x) => variantKey(x) === variantKey(opts))) list.push(opts)
    this.wanted.set(passKey(opts), list)
    return kvzipPolicy(o, (ctx, repeat) => this.scoresOf(ctx, repeat, opts))
  }

  private scoresOf(ctx: PolicyContext, repeat: RepeatPrompts, opts: KVzipOptions): Promise<Float32Array[][]> {
    const ids = ctx.runtime?.contextIds ?? []
    if (ctx.model !== this.model || ids.length !== this.ids.length || ids.some((x, i) => x !== this.ids[i])) {
      // another context: what this share holds is not its scores
      this.scores.clear()
      this.ids = ids.slice()
      this.model = ctx.model
    }
    let s = this.scores.get(variantKey(opts))
    if (!s) {
      const variants = this.wanted.get(passKey(opts))!
      const pass = kvzipScoresShared(ctx, repeat, variants)
      variants.forEach((v, i) => {
        const mine = pass.then((x) => x[i])
        this.scores.set(variantKey(v), mine)
        // an aborted pass serves nobody (the next session runs its own); a variant nobody awaits yet
        // must not surface its rejection as unhandled
        mine.catch(() => {
          if (this.scores.get(variantKey(v)) === mine) this.scores.delete(variantKey(v))
        })
      })
      s = this.scores.get(variantKey(opts))!
    }
    return s
  }
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { evaluate } from '../src/eval/runner.js'
import { EvalSession } from '../src/eval/session.js'
import type { SampleOutcome } from '../src/eval/results.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { loadModel } from '../src/node/load.js'
import { policyRuntime } from '../src/model/policy-runtime.js'
import type { LlamaModel } from '../src/model/model.js'
import { KVzipShare } from '../src/policies/kvzip-share.js'
import { KVzipVariantError, kvzipScoresShared, repeatPrompts } from '../src/policies/kvzip.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Decision } from '../src/cache/types.js'
import type { Policy, PolicyContext } from '../src/policies/types.js'

// KVzip's reconstruction shared by every kvzip policy of a sample (kvzip-share.ts, evaluate's sessions)
// against each policy's own reconstruction (createPolicy): the same kept sets and the same answers.
// chunk=48 cuts the short prompts into several reconstruction passes, with a sink and an overlap.
const SPECS = [
  'kvzip:budget=0.5', 'kvzip:budget=0.25', 'kvzip:budget=0.25,plus=true', 'kvzip:budget=0.125,plus=true',
  'kvzip:budget=0.25,chunk=48', 'kvzip:budget=0.5,chunk=48,plus=true', 'kvzip:budget=0.25,layerwise=true',
]

describe('KVzipShare', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel(defaultModelDir(), { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())

  /** each policy's decision at prefill end on a fresh prefill of ids, and the reconstruction passes run */
  async function decisions(policies: (Policy | null)[], ids: number[]): Promise<{ keep: number[][][]; passes: number }> {
    let passes = 0
    const keep: number[][][] = []
    for (const policy of policies) {
      const cache = model.newCache()
      model.prefill(ids, cache, 0)
      const ctx: PolicyContext = { cache, ops: model.ops, model: model.config, hooks: [], promptLength: ids.length + 1, step: 0 }
      const rt = policyRuntime(model, cache, ids, () => ctx)
      ctx.runtime = { ...rt, extendAsync: (x, visit) => { passes++; return rt.extendAsync(x, visit) } }
      await policy!.prepare?.(model)
      const d = (await policy!.start().onPrefillEndAsync!(ctx)) as Decision
      keep.push(d.heads.map((h) => Array.from(h.keep)))
      cache.dispose()
    }
    return { keep, passes }
  }

  it('keeps, for every spec, the sets of its own reconstruction, with one reconstruction per chunking', async () => {
    const ids = [0, ...model.tokenizer.encode(' The grass is green. The pass key is 40213. Remember it. The sky is blue. '.repeat(4))]
    const share = new KVzipShare()
    const shared = await decisions(SPECS.map((s) => share.policy(s, model.config)), ids)
    const own = await decisions(SPECS.map((s) => createPolicy(s, model.config)), ids)
    expect(shared.keep.length).toBe(SPECS.length)
    expect(shared.keep).toEqual(own.keep)
    const chunks = Math.ceil(ids.length / 48)
    expect(ids.length).toBeGreaterThan(2 * 48)
    // own: a pass per kvzip spec and chunk; shared: one for the default chunking (plain and plus
    // together), one per chunk of 48 (plain and plus together)
    expect(own.passes).toBe(5 + 2 * chunks)
    expect(shared.passes).toBe(1 + chunks)
    // the budgets and variants differ: the sets are not all one
    expect(new Set(shared.keep.map((k) => JSON.stringify(k))).size).toBe(SPECS.length)
  }, 120_000)

  it('recomputes for another context instead of reusing the scores of the last one', async () => {
    const a = [0, ...model.tokenizer.encode(' The pass key is 40213. Remember it. The sky is blue. '.repeat(3))]
    const b = [0, ...model.tokenizer.encode(' A red fox ran past the old mill at noon. '.repeat(4))]
    const share = new KVzipShare()
    const policy = share.policy('kvzip:budget=0.25', model.config)
    const first = await decisions([policy, policy], a)
    const other = await decisions([policy], b)
    expect(first.passes).toBe(1)
    expect(other.passes).toBe(1)
    expect(other.keep).toEqual((await decisions([createPolicy('kvzip:budget=0.25', model.config)], b)).keep)
  }, 60_000)

  it('refuses variants that cannot share a pass, naming both', () => {
    const cache = model.newCache()
    const ctx: PolicyContext = { cache, ops: model.ops, model: model.config, hooks: [], promptLength: 2, step: 0 }
    ctx.runtime = policyRuntime(model, cache, [0], () => ctx)
    const o = { sinks: 4, chunk: 2048, overlap: 8, plus: false }
    expect(() => kvzipScoresShared(ctx, repeatPrompts(model.tokenizer), [o, { ...o, chunk: 64, plus: true }])).toThrow(KVzipVariantError)
    expect(() => kvzipScoresShared(ctx, repeatPrompts(model.tokenizer), [o, { ...o, chunk: 64 }])).toThrow(/"chunk":2048.*"chunk":64/)
    cache.dispose()
  })
})

describe('evaluate shares one KVzip reconstruction across its kvzip policies', () => {
  it.each(['with', 'after'] as const)('with the answers and bytes of a reconstruction per policy (question %s)', async (question) => {
    const outcomes: SampleOutcome[] = []
    await evaluate({
      model: defaultModelDir(), backend: 'wasm', policies: [...SPECS, 'snapkv:budget=0.25', 'full'], tasks: ['passkey'], lengths: [192], samples: 1, seed: 5, workers: 1, question,
      onOutcome: (o) => outcomes.push(o),
    })
    const session = await EvalSession.open({ model: defaultModelDir(), backend: 'wasm' })
    try {
      const sample = session.sample('passkey', 192, 5, 0)
      for (const spec of SPECS) {
        const own = await session.model.generate(sample.prompt_ids, {
          maxNewTokens: sample.answer_ids.length + 3, policy: createPolicy(spec, session.model.config)!,
          contextTokens: question === 'after' ? sample.context_len : undefined,
        }).result
        const got = outcomes.find((o) => o.policy === spec)!
        expect({ spec, text: got.continuation, kv: got.kvBytes }).toEqual({ spec, text: own.text, kv: own.stats.kvBytes.total })
      }
    } finally {
      session.dispose()
    }
  }, 300_000)
})

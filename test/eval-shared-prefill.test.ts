import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { evaluate } from '../src/eval/runner.js'
import type { SampleOutcome } from '../src/eval/results.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { h2o, snapkv, streamingllm } from '../src/policies/factories.js'

// A grid over what a shared prefill must hand each policy as its own prefill would: observation windows
// smaller and larger than the others', the attention mass (H2O), hidden states (TRIM-KV), decode-time
// queries (TOVA every step), keys stored pre-RoPE (StreamingLLM re-rotating: its own prefill group), a
// calibration run (RazorAttention), a channel-pruning composition, and the full cache.
// TRIM-KV's retention gates for the fixture (8 layers, 2 KV heads, hidden 384): fixed made-up weights
const gatesFile = join(mkdtempSync(join(tmpdir(), 'kvkit-gates-')), 'gates.json')
const wave = (i: number) => 0.05 * Math.sin(0.7 * i + 1.3)
writeFileSync(gatesFile, JSON.stringify({
  format: 'trimkv-gates', hidden: 384, kvHeads: 2,
  layers: Array.from({ length: 8 }, (_, l) => ({ weight: [0, 1].map((h) => Array.from({ length: 384 }, (_, c) => wave(l * 1000 + h * 400 + c))), bias: [1, 2] })),
}))
const POLICIES = [
  'full',
  'snapkv:budget=0.25,window=16',
  'snapkv:budget=0.25,window=48,pooling=avg,kernel=9',
  'unionkv:budget=0.25',
  'h2o:budget=0.25',
  'tova:budget=0.25,every=1',
  `trimkv:budget=0.25,gatesFile=${gatesFile}`,
  'streamingllm:budget=0.25,rerotate=true',
  'razorattention:budget=0.25',
  'snapkv:budget=0.5+think:ratio=0.5',
]

describe('evaluate shares each sample\'s prefill across its policies', () => {
  it('with the outcomes of a prefill per policy: the same continuations, scores and KV bytes', async () => {
    const run = async (sharePrefill: boolean) => {
      const outcomes: SampleOutcome[] = []
      const results = await evaluate({
        model: defaultModelDir(), policies: POLICIES, tasks: ['passkey', 'vt'], lengths: [384], samples: 1, seed: 5, workers: 1,
        sharePrefill, onOutcome: (o) => outcomes.push(o),
      })
      const key = (o: SampleOutcome) => `${o.policy}|${o.task}|${o.index}`
      return {
        outcomes: outcomes.map((o) => ({ key: key(o), text: o.continuation, correct: o.correct, score: o.score, kv: o.kvBytes, full: o.kvBytesFull })).sort((a, b) => a.key.localeCompare(b.key)),
        table: results.map((r) => ({ policy: r.policy, task: r.task, accuracy: r.accuracy, score: r.score, kvBytes: r.kvBytes })),
      }
    }
    const shared = await run(true)
    const own = await run(false)
    expect(shared.outcomes).toHaveLength(POLICIES.length * 2)
    expect(shared.outcomes).toEqual(own.outcomes)
    expect(shared.table).toEqual(own.table)
    // the grid means something: policies differ from the full cache in bytes, and the model answers
    const full = shared.outcomes.filter((o) => o.key.startsWith('full|'))
    expect(full.filter((o) => o.correct).length).toBeGreaterThanOrEqual(1)
    expect(shared.outcomes.filter((o) => o.kv < 0.6 * o.full).length).toBeGreaterThan(POLICIES.length)
  }, 300_000)
})

describe('evaluate in the question-after loop shares each sample\'s context prefill', () => {
  it('with the outcomes of a context prefill per policy', async () => {
    const policies = ['full', 'unionkv:budget=0.25', 'lagkv:budget=0.25,lag=32', 'h2o:budget=0.25']
    const run = async (sharePrefill: boolean) => {
      const outcomes: SampleOutcome[] = []
      await evaluate({
        model: defaultModelDir(), policies, tasks: ['passkey'], lengths: [384], samples: 1, seed: 5, workers: 1,
        question: 'after', sharePrefill, onOutcome: (o) => outcomes.push(o),
      })
      return outcomes.map((o) => ({ policy: o.policy, question: o.question, text: o.continuation, kv: o.kvBytes }))
    }
    const shared = await run(true)
    expect(shared).toHaveLength(policies.length)
    expect(shared.every((o) => o.question === 'after')).toBe(true)
    expect(shared).toEqual(await run(false))
  }, 120_000)
})

describe('generate from a shared prefill', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel(defaultModelDir(), { backend: 'wasm' })
  })
  afterAll(() => model?.dispose())

  it('refuses a prompt or a policy the prefill was not made for, naming what differs', async () => {
    const ids = [0, ...model.tokenizer.encode('The pass key is 12345. Remember it. What is the pass key?')]
    const prefill = await model.prefillPrompt(ids, [snapkv({ window: 8 })])
    expect(() => model.generate(ids.slice(1), { prefill })).toThrow(/the prompt differs/)
    expect(() => model.generate(ids, { policy: snapkv({ window: 16 }), prefill })).toThrow(/an observation window of 16/)
    expect(() => model.generate(ids, { policy: h2o(), prefill })).toThrow(/the attention mass/)
    expect(() => model.generate(ids, { policy: streamingllm({ rerotate: true }), prefill })).toThrow(ModelInputError)
    await expect(model.prefillPrompt(ids, [snapkv(), streamingllm({ rerotate: true })])).rejects.toThrow(/pre-RoPE and post-RoPE cannot share a prefill/)
  })

  it('of the context alone serves question-after generations with that contextTokens, and refuses others', async () => {
    const context = [0, ...model.tokenizer.encode(' The grass is green. The pass key is 40213. Remember it. The sky is blue. '.repeat(6))]
    const ids = [...context, ...model.tokenizer.encode(' What is the pass key? The pass key is')]
    const c = context.length
    const policy = snapkv({ budget: 0.5, window: 8 })
    const prefill = await model.prefillPrompt(ids, [policy], { contextTokens: c })
    expect(prefill.contextTokens).toBe(c)
    for (const p of [policy, null]) {
      const own = await model.generate(ids, { policy: p ?? undefined, contextTokens: c, maxNewTokens: 6 }).result
      const shared = await model.generate(ids, { policy: p ?? undefined, contextTokens: c, maxNewTokens: 6, prefill }).result
      expect(shared.ids).toEqual(own.ids)
      expect(shared.stats.kvBytes).toEqual(own.stats.kvBytes)
    }
    expect(() => model.generate(ids, { policy, prefill })).toThrow(new RegExp(`holds ${c} prompt tokens, the generation compresses ${ids.length - 1}`))
    expect(() => model.generate(ids, { policy, contextTokens: c - 1, prefill })).toThrow(ModelInputError)
    await expect(model.prefillPrompt(ids, [policy], { contextTokens: ids.length })).rejects.toThrow(/contextTokens must be an integer in \[1, \d+\]/)
  })
})

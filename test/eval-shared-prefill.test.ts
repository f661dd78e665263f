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
  'unionkv:budget=0.25,agnostic=0.25,contrast=256',
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
  })
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
})

/**
 * Peer parity: kvkit's eviction policies keep the same tokens as NVIDIA kvpress 0.5.4 on the fixture
 * model, one 4096-context passkey prompt, 25% budget (test/data/kvpress, README there: kvpress's own
 * decisions captured on an H100). The model runs through the public API: one `generate` call whose
 * policy asks every policy under test for its decision at prefill end and records the kept positions
 * (nothing is applied, so all of them see the same cache).
 *
 * Agreement: at least 99% of each (layer, KV head)'s kept set, and every disagreement is a near-tie:
 * kvpress's own score for the token lies within 1e-3 (relative) of its boundary (the last kept score),
 * i.e. float32 kernels in another order, not another method.
 */
import { readKvpress } from './kvpress-data.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { keptAtPrefillEnd } from './parity-helpers.js'

interface PressLayer {
  kept: number[][]
  scores_f32_b64: string[]
  boundary: { last_kept: number; first_dropped: number }[]
}
interface PressFile {
  n_tokens: number
  n_kept: number
  layers: PressLayer[]
}
const read = readKvpress

// kvkit's spec for each kvpress press, with the same settings (README: window, pooling, budget, GQA mean)
const CASES: Record<string, string> = {
  'snapkv_w32_k5.json': 'snapkv:budget=0.25,window=32,pooling=avg,kernel=5,group=mean',
  'snapkv_w64_k5.json': 'snapkv:budget=0.25,window=64,pooling=avg,kernel=5,group=mean',
  'streamingllm.json': 'streamingllm:budget=0.25,sinks=4',
  'knorm.json': 'knorm:budget=0.25',
  'tova.json': 'tova:budget=0.25',
  // kvpress's ObservedAttention: mean attention a token receives from the queries that see it, no recent window
  'observed_attention.json': 'h2o:budget=0.25,recent=0,normalize=true',
}

// ThinK's kept key channels. kvpress scores channels over every cached key, the recent window included
// (README there), which is kvkit's `recent=0`; the channel order of sqrt(sum q^2) * sqrt(sum k^2) is that of
// kvpress's product of means of squares, and both drop floor(64 * 0.4) = 25 channels.
const THINK = 'think:ratio=0.4,window=32,recent=0'

function scores(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64')
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
}

describe('parity with kvpress on the fixture model (passkey, 4096, 25%)', () => {
  let model: LlamaModel
  let kept = new Map<string, number[][][]>() // spec -> [layer][head] kept positions
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { backend: 'wasm' })
    const prompt = read('prompt.json') as { prompt_ids: number[] }
    const policies = [...Object.values(CASES), THINK].map((s) => ({ spec: s, p: createPolicy(s, model.config) as Policy }))
    kept = await keptAtPrefillEnd(model, prompt.prompt_ids, policies)
  }, 600_000)
  afterAll(() => model?.dispose())

  for (const [file, spec] of Object.entries(CASES)) {
    it(`${spec} keeps what kvpress keeps (${file})`, () => {
      const ref = read(file) as PressFile
      const mine = kept.get(spec)!
      expect(mine).toBeDefined()
      let differ = 0
      ref.layers.forEach((layer, l) =>
        layer.kept.forEach((theirs, h) => {
          const ours = mine[l][h]
          expect(ours.length, `layer ${l} head ${h}: kept count`).toBe(ref.n_kept)
          const a = new Set(ours)
          const b = new Set(theirs)
          const onlyOurs = ours.filter((t) => !b.has(t))
          const onlyTheirs = theirs.filter((t) => !a.has(t))
          expect(1 - onlyTheirs.length / ref.n_kept, `layer ${l} head ${h}: overlap`).toBeGreaterThanOrEqual(0.99)
          const s = scores(layer.scores_f32_b64[h])
          const edge = layer.boundary[h].last_kept
          for (const t of [...onlyOurs, ...onlyTheirs]) {
            const rel = Math.abs(s[t] - edge) / Math.max(Math.abs(edge), 1e-30)
            expect(rel, `layer ${l} head ${h}: token ${t} differs, kvpress score ${s[t]} vs boundary ${edge}`).toBeLessThan(1e-3)
          }
          differ += onlyTheirs.length
        }),
      )
      console.log(`${spec}: ${differ} of ${ref.n_kept * ref.layers.length * 2} kept tokens differ from kvpress (all near-ties)`)
    })
  }

  it(`${THINK} keeps the key channels kvpress's ThinK keeps (think.json)`, () => {
    const ref = read('think.json') as { layers: { kept: number[][] }[] }
    const mine = kept.get(THINK)!
    ref.layers.forEach((layer, l) => layer.kept.forEach((theirs, h) => expect(mine[l][h], `layer ${l} head ${h}`).toEqual(theirs)))
  })
})

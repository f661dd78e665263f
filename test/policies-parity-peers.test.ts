/**
 * Peer parity for kvpress's newer presses (test/data/kvpress, README there: captured on an H200 with
 * kvpress 0.5.4): LagKV, CriticalKV(SnapKV) and Compactor keep per KV head the same tokens as kvpress;
 * CriticalAdaKV(SnapKV), KVzip and KVzip+ (which kvpress only masks) give each head the same ragged
 * budget and keep the same tokens, here with the memory freed. One prompt (passkey, 4096, 25% kept),
 * one `generate` whose recorder policy asks every policy under test for its decision at prefill end
 * (nothing is applied, so all of them see the same cache; KVzip's reconstruction pass runs through the
 * runtime's forward pass). Compactor replays kvpress's own random sketches (recorded in compactor.json).
 *
 * Agreement: at least 99% of each (layer, KV head)'s kept set; where kvpress recorded the score it
 * ranked by, every disagreement is a near-tie (within 1e-3 relative of the boundary score).
 */
import { readKvpress } from './kvpress-data.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import { compactorPolicy } from '../src/policies/compactor.js'
import type { Policy } from '../src/policies/types.js'
import { keptAtPrefillEnd } from './parity-helpers.js'

const read = readKvpress
function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64')
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))
}

interface Case {
  file: string
  /** the kvkit spec (or a label, for Compactor built with kvpress's sketches) */
  spec: string
  /** kvpress keeps the same count in every head (ScorerPress) or a ragged one (masked presses) */
  ragged: boolean
  /** the score field kvpress ranked by, and whether the boundary is per head or over all heads */
  scores?: { field: string; boundary: 'head' | 'global' }
}

const CASES: Case[] = [
  { file: 'lagkv.json', spec: 'lagkv:budget=0.25', ragged: false, scores: { field: 'scores_f32_b64', boundary: 'head' } },
  { file: 'criticalkv_snapkv.json', spec: 'criticalkv:budget=0.25', ragged: false, scores: { field: 'scores_f32_b64', boundary: 'head' } },
  { file: 'compactor.json', spec: 'compactor (kvpress sketches)', ragged: false, scores: { field: 'scores_f32_b64', boundary: 'head' } },
  { file: 'criticaladakv_snapkv.json', spec: 'criticaladakv:budget=0.25', ragged: true },
  { file: 'kvzip.json', spec: 'kvzip:budget=0.25', ragged: true, scores: { field: 'scores_f32_b64', boundary: 'global' } },
  { file: 'kvzip_plus.json', spec: 'kvzip:budget=0.25,plus=true', ragged: true, scores: { field: 'scores_f32_b64', boundary: 'global' } },
]

function compactorWithKvpressSketches(): Policy {
  const ref = read('compactor.json') as { layers: { sketch_f32_b64: string[] }[] }
  return compactorPolicy({ budget: 0.25, sinks: 8, recent: 4, chunk: 256, sketch: 48 }, (layer, head) => f32(ref.layers[layer].sketch_f32_b64[head]))
}

describe('parity with kvpress\'s newer presses on the fixture model (passkey, 4096, 25%)', () => {
  let model: LlamaModel
  let kept = new Map<string, number[][][]>()
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { backend: 'wasm' })
    const prompt = read('prompt.json') as { prompt_ids: number[] }
    const policies = CASES.map((c) => ({ spec: c.spec, p: c.file === 'compactor.json' ? compactorWithKvpressSketches() : (createPolicy(c.spec, model.config) as Policy) }))
    kept = await keptAtPrefillEnd(model, prompt.prompt_ids, policies)
  }, 900_000)
  afterAll(() => model?.dispose())

  it('KVzip repeats its context with the ids kvpress used', () => {
    const ref = read('kvzip.json') as { repeat_ids: number[][] }
    const prompt = read('prompt.json') as { prompt_ids: number[] }
    const ids = prompt.prompt_ids.slice(0, prompt.prompt_ids.length - 1)
    const t = model.tokenizer
    expect(ref.repeat_ids[0]).toEqual([...t.encode('\n\nRepeat the previous context exactly.'), ...t.encode('\n'), ...ids.slice(0, 2048)])
    expect(ref.repeat_ids[1]).toEqual([...t.encode('\n\nRepeat the part of the previous context exactly, starting with'), ...ids.slice(2040, 2048), ...t.encode('\n'), ...ids.slice(2048)])
  })

  for (const c of CASES) {
    it(`${c.spec} keeps what kvpress keeps (${c.file})`, () => {
      const ref = read(c.file) as { n_kept: number; layers: ({ kept: number[][] } & Record<string, unknown>)[] }
      const mine = kept.get(c.spec)!
      const total = (xs: number[][][]) => xs.reduce((s, l) => s + l.reduce((t, h) => t + h.length, 0), 0)
      const theirsAll = ref.layers.map((l) => l.kept)
      // kvkit keeps floor(0.25 x n) per head on average; kvpress's KVzip counts N - floor(0.75 N), 4 more
      if (c.ragged) expect(Math.abs(total(mine) - total(theirsAll)), 'kept over all heads').toBeLessThanOrEqual(c.scores?.boundary === 'global' ? 4 : 0)
      // the global boundary of a one-pool selection: the lowest score kvpress kept
      let globalEdge = Infinity
      if (c.scores?.boundary === 'global')
        ref.layers.forEach((layer) => layer.kept.forEach((ks, h) => {
          const s = f32((layer[c.scores!.field] as string[])[h])
          for (const t of ks) globalEdge = Math.min(globalEdge, s[t])
        }))
      let differ = 0
      ref.layers.forEach((layer, l) =>
        layer.kept.forEach((theirs, h) => {
          const ours = mine[l][h]
          if (c.ragged) expect(Math.abs(ours.length - theirs.length), `layer ${l} head ${h}: kept ${ours.length} vs ${theirs.length}`).toBeLessThanOrEqual(Math.ceil(0.01 * theirs.length))
          else expect(ours.length, `layer ${l} head ${h}: kept count`).toBe(ref.n_kept)
          const a = new Set(ours)
          const b = new Set(theirs)
          const onlyOurs = ours.filter((t) => !b.has(t))
          const onlyTheirs = theirs.filter((t) => !a.has(t))
          expect(1 - onlyTheirs.length / theirs.length, `layer ${l} head ${h}: overlap`).toBeGreaterThanOrEqual(0.99)
          if (c.scores) {
            const s = f32((layer[c.scores.field] as string[])[h])
            const edge = c.scores.boundary === 'global' ? globalEdge : (layer.boundary as { last_kept: number }[])[h].last_kept
            for (const t of [...onlyOurs, ...onlyTheirs]) {
              const rel = Math.abs(s[t] - edge) / Math.max(Math.abs(edge), 1e-30)
              expect(rel, `layer ${l} head ${h}: token ${t} differs, kvpress score ${s[t]} vs boundary ${edge}`).toBeLessThan(1e-3)
            }
          }
          differ += onlyTheirs.length
        }),
      )
      console.log(`${c.spec}: ${differ} of ${total(theirsAll)} kept tokens differ from kvpress`)
    })
  }
})

/**
 * The trained parts shipped for the fixture model (issue 19): NOSA's learned value scores and TRIM-KV's
 * retention gates, as files, as policies checked against plain TypeScript twins, and end to end through
 * the public API.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPolicy } from '../src/policies/registry.js'
import { PolicyOptionValueError } from '../src/policies/errors.js'
import { learnedValueScores, NosaScoresFileError, parseNosaScores, readNosaScoresFile } from '../src/policies/nosa-scores.js'
import { GateFileError, readGatesFile } from '../src/policies/trimkv-gates.js'
import { pageSlots } from '../src/policies/selection.js'
import { questPageScores } from '../src/policies/quest.js'
import { PageBounds } from '../src/policies/page-bounds.js'
import { loadModel } from '../src/node/load.js'
import { evaluate } from '../src/eval/runner.js'
import type { SampleOutcome } from '../src/eval/results.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { LlamaModel } from '../src/model/model.js'
import { randArray, randomContext, rng, shape } from './policy-context-helpers.js'
import { safetensorsF32 } from './tiny-model.js'

const NOSA = 'models/fixture-14m-nosa/scores.safetensors'
const GATES = ['gates-M512', 'gates-M1024', 'gates-corpus-M512'].map((g) => `models/fixture-14m-trimkv/${g}.safetensors`)
const dir = mkdtempSync(join(tmpdir(), 'kvkit-trained-'))

/** a scores file of random weights for a model shape */
function randomScoresFile(name: string, layers: number, kvHeads: number, headDim: number, seed: number): { path: string; w: Float32Array[]; b: Float32Array[] } {
  const r = rng(seed)
  const w = Array.from({ length: layers }, () => randArray(r, kvHeads * headDim, 1))
  const b = Array.from({ length: layers }, () => randArray(r, kvHeads, 1))
  const path = join(dir, name)
  writeFileSync(path, safetensorsF32(w.flatMap((data, l) => [
    { name: `scores.${l}.weight`, shape: [kvHeads, headDim], data },
    { name: `scores.${l}.bias`, shape: [kvHeads], data: b[l] },
  ])))
  return { path, w, b }
}

describe('the shipped trained parts', () => {
  it('NOSA scores cover every layer and KV head of the fixture model over head_dim', () => {
    const s = readNosaScoresFile(NOSA)
    expect([s.layers.length, s.outputs, s.inputs]).toEqual([8, 2, 64])
  })
  it.each(GATES)('TRIM-KV gates %s cover every layer of the fixture with one gate per KV head over the hidden size', (path) => {
    const g = readGatesFile(path)
    expect([g.layers.length, g.kvHeads, g.hidden]).toEqual([8, 2, 384])
    // trained away from their initialisation (zero weights): the gates read the hidden state
    expect(g.layers.every((L) => L.weight.some((x) => x !== 0))).toBe(true)
  })
})

describe('NOSA learned value scores', () => {
  const M = shape(3, 8, 2, 16)

  it('score a value row as w . v + b, against a float64 twin', () => {
    const { path, w, b } = randomScoresFile('twin.safetensors', 3, 2, 16, 1)
    const s = readNosaScoresFile(path)
    const r = rng(2)
    const n = 37
    const v = randArray(r, n * 16, 3)
    for (let l = 0; l < 3; l++) {
      for (let h = 0; h < 2; h++) {
        const got = learnedValueScores(s, l, h, v, n)
        for (let i = 0; i < n; i++) {
          let want = b[l][h]
          for (let c = 0; c < 16; c++) want += w[l][h * 16 + c] * v[i * 16 + c]
          expect(got[i]).toBeCloseTo(want, 4)
        }
      }
    }
  })

  it.each([[640, 64, 512, 0.5], [300, 16, 128, 0.25], [300, 16, 128, 1], [1000, 64, 256, 0.5]])(
    'n=%i block=%i tokens=%i agnostic=%f: the agnostic blocks are those of the largest learned token score, the rest by Quest bounds',
    (n, block, B, share) => {
      const { path, w, b } = randomScoresFile(`sel-${n}-${block}.safetensors`, M.layers, M.kvHeads, M.headDim, n)
      const { ctx, cache } = randomContext(n, M, n, 1)
      const q = randArray(rng(n), M.qHeads * M.headDim, 2)
      const s = createPolicy(`nosa:tokens=${B},block=${block},agnostic=${share},scoresFile=${path}`, M)!.start()
      const sel = s.selectTokens!(ctx, 1, q)!
      const blocks = Math.ceil(n / block)
      const k = Math.floor(B / block)
      const rank = (score: number[], skip: Set<number>, count: number) => score.map((x, i) => [x, i]).filter(([, i]) => !skip.has(i)).sort((a, c) => c[0] - a[0] || a[1] - c[1]).slice(0, count).map((x) => x[1])
      const bounds = new PageBounds(ctx.ops.heap, block)
      for (let g = 0; g < M.kvHeads; g++) {
        const V = ctx.cache.readValues(1, g)
        const learned = Array.from({ length: blocks - 1 }, (_, bl) => {
          let m = -Infinity
          for (let i = bl * block; i < (bl + 1) * block; i++) {
            let t = b[1][g]
            for (let c = 0; c < M.headDim; c++) t += w[1][g * M.headDim + c] * V[i * M.headDim + c]
            m = Math.max(m, t)
          }
          return m
        })
        const chosen = new Set([blocks - 1, ...rank(learned, new Set(), Math.round(share * (k - 1)))])
        const aware = Array.from(questPageScores(ctx, bounds, 1, g, q)).slice(0, blocks - 1)
        for (const x of rank(aware, chosen, k - chosen.size)) chosen.add(x)
        expect(Array.from(sel[g]!)).toEqual(Array.from(pageSlots([...chosen], block, n)))
      }
      bounds.free()
      s.dispose?.()
      cache.dispose()
    },
  )

  it('refuses scores made for another model shape, naming both', () => {
    const { path } = randomScoresFile('other.safetensors', 3, 2, 8, 3)
    expect(() => createPolicy(`nosa:scoresFile=${path}`, M)).toThrow(PolicyOptionValueError)
    expect(() => createPolicy(`nosa:scoresFile=${path}`, M)).toThrow(/head_dim 8, the model has 3 x 2 x 16/)
  })

  it('refuses a missing file, a file that is not safetensors, and non-finite weights with NosaScoresFileError', () => {
    expect(() => createPolicy(`nosa:scoresFile=${join(dir, 'absent.safetensors')}`, M)).toThrow(NosaScoresFileError)
    expect(() => createPolicy(`nosa:scoresFile=${join(dir, 'scores.json')}`, M)).toThrow(NosaScoresFileError)
    const bad = safetensorsF32([
      { name: 'scores.0.weight', shape: [2, 2], data: Float32Array.from([1, NaN, 0, 0]) },
      { name: 'scores.0.bias', shape: [2], data: new Float32Array(2) },
    ])
    expect(() => parseNosaScores(new Uint8Array(bad))).toThrow(/non-finite/)
    expect(() => parseNosaScores(new Uint8Array(bad.subarray(0, 20)))).toThrow(NosaScoresFileError)
  })
})

describe('the trained parts end to end on the fixture model', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m')
  })
  afterAll(() => model?.dispose())

  const prompt = (n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % 4000))

  it.each([[200, 64], [700, 128]])('TRIM-KV with the shipped gates keeps %i-token prompts at %i tokens a KV head, streamed or not alike', async (n, tokens) => {
    const policy = `trimkv:tokens=${tokens},gatesFile=${GATES[0]}`
    const result = await model.generate(prompt(n), { policy, maxNewTokens: 4 }).result
    // every KV head holds `tokens` float32 K and V rows after the prefill-end eviction
    const { layers, kvHeads, headDim } = model.config
    expect(result.stats.kvBytesAfterPrefill.total).toBe(tokens * layers * kvHeads * 2 * headDim * 4)
    const streamed: number[] = []
    for await (const t of model.generate(prompt(n), { policy, maxNewTokens: 4 })) streamed.push(t.id)
    expect(streamed).toEqual(result.ids)
  })

  it.each([[300, 128], [800, 256]])('NOSA with the learned scores attends within %i tokens at budget %i and counts its moves', async (n, tokens) => {
    const result = await model.generate(prompt(n), { policy: `nosa:tokens=${tokens},scoresFile=${NOSA}`, maxNewTokens: 6 }).result
    expect(result.stats.newTokens).toBeGreaterThan(0)
    const report = result.stats.policy!
    expect(report.blocksSelected).toBeGreaterThan(0)
    expect(report.blocksMoved).toBeLessThanOrEqual(report.blocksSelected)
  })
})

describe('evaluate reports a policy\'s own counters', () => {
  it('per sample and as the cell\'s mean: NOSA\'s tier transfers with the learned scores, none for the full cache', async () => {
    const outcomes: SampleOutcome[] = []
    const results = await evaluate({
      model: defaultModelDir(), policies: ['full', `nosa:tokens=128,scoresFile=${NOSA}`], tasks: ['passkey'], lengths: [512], samples: 2, seed: 3, workers: 1,
      onOutcome: (o) => outcomes.push(o),
    })
    const nosaOutcomes = outcomes.filter((o) => o.policy.startsWith('nosa'))
    expect(nosaOutcomes).toHaveLength(2)
    for (const o of nosaOutcomes) {
      expect(o.newTokens).toBeGreaterThan(0)
      expect(o.policyStats!.blocksSelected).toBeGreaterThan(0)
    }
    const cell = results.find((r) => r.policy.startsWith('nosa'))!
    expect(cell.policyStats!.blocksMoved).toBeCloseTo((nosaOutcomes[0].policyStats!.blocksMoved + nosaOutcomes[1].policyStats!.blocksMoved) / 2, 9)
    expect(results.find((r) => r.policy === 'full')!.policyStats).toBeUndefined()
  }, 120_000)
})

describe('TRIM-KV in the question-after loop', () => {
  const gates = GATES[0]
  it('is refused by generate before any work, naming the policy and contextTokens', async () => {
    const model = await loadModel('models/fixture-14m')
    try {
      const ids = Array.from({ length: 80 }, (_, i) => 3 + i)
      expect(() => model.generate(ids, { policy: `trimkv:tokens=16,gatesFile=${gates}`, contextTokens: 60 })).toThrow(/policy 'trimkv' scores every token .*contextTokens 60 of 79/)
      // compressing the whole prompt, and UnionKV's gates (scored once, at prefill end), stay allowed
      await model.generate(ids, { policy: `trimkv:tokens=16,gatesFile=${gates}`, maxNewTokens: 2 }).result
      await model.generate(ids, { policy: `unionkv:tokens=16,gatesFile=${gates}`, contextTokens: 60, maxNewTokens: 2 }).result
    } finally {
      model.dispose()
    }
  })
  it('is refused by evaluate before any sample runs', async () => {
    await expect(evaluate({
      model: defaultModelDir(), policies: ['full', `trimkv:budget=0.25,gatesFile=${gates}`], tasks: ['passkey'], lengths: [256], samples: 1, workers: 1, question: 'after',
    })).rejects.toThrow(/trimkv.*question-after loop/)
  })
})

describe('a bad gate or score file', () => {
  it.each([
    ['NOSA scores without their tensors', 'no-scores.safetensors', (p: string) => readNosaScoresFile(p), NosaScoresFileError, /no "scores.0.weight" tensor/],
    ['TRIM-KV gates without their tensors', 'no-gates.safetensors', (p: string) => readGatesFile(p), GateFileError, /no "gates.0.weight" tensor/],
    ['TRIM-KV gates as a JSON of another format', 'other.json', (p: string) => readGatesFile(p), GateFileError, /format must be "trimkv-gates"/],
  ] as const)('%s: the typed error names the file and what is wrong', (_, name, read, errorClass, what) => {
    const path = join(dir, name)
    writeFileSync(path, name.endsWith('.json') ? JSON.stringify({ format: 'other' }) : safetensorsF32([{ name: 'other.weight', shape: [1], data: new Float32Array(1) }]))
    expect(() => read(path)).toThrow(errorClass)
    expect(() => read(path)).toThrow(new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*${what.source}`))
  })
})

/**
 * `GenerateOptions.onKept` (issue 20, the playground's heat map): what it reports is what the cache
 * holds. Grid: policies (full, StreamingLLM, SnapKV, H2O's decode-time eviction, Quest's selection) x
 * budgets x two prompt lengths. References: full keeps every position; StreamingLLM keeps its sinks and
 * a suffix; the kept counts times a row's bytes are the generation's `kvBytesAfterPrefill` / `kvBytes`;
 * Quest's attended tokens are whole
 * pages of 16 (the newest and the best others, paper sec. 3), dense in its first two layers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import type { KeptTokens } from '../src/model/types.js'

let model: LlamaModel
beforeAll(async () => {
  model = await loadModel('models/fixture-14m', { backend: 'wasm' })
})
afterAll(() => model?.dispose())

const LENGTHS = [97, 301]
const NEW = 4

function prompt(n: number): number[] {
  const ids = model.tokenizer.encode('Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do. '.repeat(40))
  return [0, ...ids].slice(0, n)
}

async function run(n: number, policy?: string) {
  const events: KeptTokens[] = []
  const r = await model.generate(prompt(n), { maxNewTokens: NEW, policy, onKept: (k) => events.push(k) }).result
  return { events, stats: r.stats, steps: r.stats.newTokens + (r.finishReason === 'eos' ? 1 : 0) }
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i)
const count = (k: KeptTokens) => k.kept.flat().reduce((s, p) => s + p.length, 0)
const isAscending = (p: Int32Array) => p.every((x, i) => i === 0 || x > p[i - 1])

describe('onKept reports what the cache holds, per layer and KV head', () => {
  for (const n of LENGTHS) {
    it(`full cache (${n} tokens): every position, growing one a step; nothing attended`, async () => {
      const { events, steps } = await run(n)
      expect(events.map((e) => `${e.stage}${e.step}`)).toEqual(['prefill0', ...range(1, steps + 1).map((s) => `decode${s}`)])
      for (const e of events) {
        expect(e.kept.length).toBe(model.config.layers)
        expect(e.attended).toBeUndefined()
        for (const layer of e.kept) {
          expect(layer.length).toBe(model.config.kvHeads)
          for (const p of layer) expect([...p]).toEqual(range(0, n - 1 + e.step))
        }
      }
    })

    for (const budget of [0.25, 0.5]) {
      it(`streamingllm budget ${budget} (${n} tokens): the 4 sinks and a suffix, as many as the bytes say`, async () => {
        const { events, stats } = await run(n, `streamingllm:budget=${budget}`)
        const first = events[0]
        const perRow = stats.kvBytesFull / (n - 1 + events.at(-1)!.step) / (model.config.layers * model.config.kvHeads)
        expect(count(first) * perRow).toBeCloseTo(stats.kvBytesAfterPrefill.total, 6)
        for (const layer of first.kept) for (const p of layer) {
          const k = p.length
          expect(k).toBeLessThan(n - 1)
          expect([...p]).toEqual([...range(0, 4), ...range(n - 1 - (k - 4), n - 1)])
        }
      })

      it(`snapkv budget ${budget} (${n} tokens): a per-head subset of the prompt, its bytes the cache's`, async () => {
        const { events, stats } = await run(n, `snapkv:budget=${budget}`)
        const perRow = stats.kvBytesFull / (n - 1 + events.at(-1)!.step) / (model.config.layers * model.config.kvHeads)
        expect(count(events[0]) * perRow).toBeCloseTo(stats.kvBytesAfterPrefill.total, 6)
        expect(count(events.at(-1)!) * perRow).toBeCloseTo(stats.kvBytes.total, 6)
        for (const p of events[0].kept.flat()) {
          expect(isAscending(p)).toBe(true)
          expect(p.length).toBeLessThan(n - 1)
          expect(p[0]).toBeGreaterThanOrEqual(0)
          expect(p.at(-1)).toBe(n - 2)
        }
        // decoded tokens are appended to every head after the prompt's kept ones
        const last = events.at(-1)!
        for (let i = 0; i < last.kept.flat().length; i++) expect(last.kept.flat()[i].length).toBe(events[0].kept.flat()[i].length + last.step)
      })
    }

    it(`h2o every step (${n} tokens): the decode-time evictions show, the count held at the budget`, async () => {
      const { events, stats } = await run(n, 'h2o:budget=0.25,every=1')
      const perRow = stats.kvBytesFull / (n - 1 + events.at(-1)!.step) / (model.config.layers * model.config.kvHeads)
      expect(count(events.at(-1)!) * perRow).toBeCloseTo(stats.kvBytes.total, 6)
      const sizes = events.map((e) => e.kept[0][0].length)
      expect(new Set(sizes).size).toBe(1)
      for (const e of events.slice(1)) {
        for (const p of e.kept.flat()) expect(isAscending(p)).toBe(true)
        // the newest token is held after its step
        expect(e.kept[3][1].at(-1)).toBe(n - 2 + e.step)
      }
    })

    it(`quest (${n} tokens): attended is a subset of what is held; dense in the first 2 layers`, async () => {
      const tokens = 32
      const { events } = await run(n, `quest:tokens=${tokens}`)
      expect(events[0].attended).toBeUndefined()
      for (const e of events.slice(1)) {
        const att = e.attended!
        expect(att.length).toBe(model.config.layers)
        for (let l = 0; l < model.config.layers; l++) for (let h = 0; h < model.config.kvHeads; h++) {
          const a = att[l][h]
          const held = new Set(e.kept[l][h])
          if (l < 2) {
            expect(a).toBeNull()
            continue
          }
          expect(a).not.toBeNull()
          expect(isAscending(a!)).toBe(true)
          for (const p of a!) expect(held.has(p)).toBe(true)
          // Quest, sec. 3: floor(32 / 16) = 2 whole pages of 16 (nothing is evicted, so slot = position):
          // the newest page, partly filled, and the best other one
          const n = held.size
          const newest = range(16 * Math.floor((n - 1) / 16), n)
          expect([...a!].slice(-newest.length)).toEqual(newest)
          const other = [...a!].slice(0, -newest.length)
          expect(other.length).toBe(16)
          expect(other[0] % 16).toBe(0)
          expect(other).toEqual(range(other[0], other[0] + 16))
        }
      }
    })
  }

  it('a non-function onKept is refused at the call, naming it', () => {
    expect(() => model.generate(prompt(20), { onKept: 5 as never })).toThrow(ModelInputError)
    expect(() => model.generate(prompt(20), { onKept: 5 as never })).toThrow(/onKept/)
  })
})

/**
 * Decode-time eviction without keeping slot order: H2O, TOVA, Knorm and StreamingLLM score tokens by
 * position, so a step that drops a token or two hands the store `Decision.evictions` (O(b) row moves)
 * and the slots after the holes change order. Checked against a plain reference that keeps every score
 * in a map by position and never looks at slots: the same tokens stay, step after step, while the
 * cache's slot order drifts away from position order.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createPolicy } from '../src/policies/registry.js'
import type { Decision } from '../src/cache/types.js'
import type { LayerHooks, PolicySession } from '../src/policies/types.js'
import { disposeCaches, dot, gauss, keptAfterPrefill, model, rng, softmax, topIdx, world, type World } from './policies-reference.js'

afterEach(disposeCaches)

const d = model.headDim
const g = model.group

/** one decode step: a new token in every head, then the policy's decision applied; returns the decision */
function step(p: PolicySession, w: World, s: number, n: number, r: () => number): { d: Decision | null; hooks: LayerHooks[] } {
  const hooks: LayerHooks[] = []
  for (let l = 0; l < model.layers; l++) {
    const k = Float32Array.from({ length: model.kvHeads * d }, () => 2 * gauss(r))
    w.cache.append(l, k, k, Int32Array.of(n - 1 + s))
    hooks.push({ layer: l, decodeQuery: Float32Array.from({ length: model.qHeads * d }, () => 2 * gauss(r)) })
  }
  return { d: p.onDecodeStep!({ ...w.ctx, hooks, step: s }), hooks }
}

/** each head's keys by position, read from the cache (slot order does not matter) */
function keysByPosition(w: World, l: number, h: number): Map<number, Float32Array> {
  const ks = w.cache.readKeys(l, h)
  return new Map(Array.from(w.cache.positions(l, h), (p, j) => [p, ks.subarray(j * d, (j + 1) * d)]))
}

const sorted = (a: ArrayLike<number>) => Array.from(a).sort((x, y) => x - y)

describe('order-free eviction at decode, state by position', () => {
  it('h2o:every=1 evicts one token a head a step through evictions, keeping what a by-position H2O keeps', () => {
    const n = 60, C = 20
    const w = world(n, 4, 5)
    const p = createPolicy(`h2o:tokens=${C},recent=0.25,every=1`, model)!.start()
    keptAfterPrefill(p, w)
    // the reference's accumulated attention, per (layer, head), by position
    const acc = Array.from({ length: model.layers }, (_, l) => Array.from({ length: model.kvHeads }, (_, h) =>
      new Map(Array.from(w.cache.positions(l, h), (t) => [t, w.mass[l][h * n + t]]))))
    const r = rng(9)
    let reordered = false
    for (let s = 1; s <= 12; s++) {
      const { d: dec, hooks } = step(p, w, s, n, r)
      for (let l = 0; l < model.layers; l++)
        for (let h = 0; h < model.kvHeads; h++) {
          const keys = keysByPosition(w, l, h)
          const m = acc[l][h]
          m.set(n - 1 + s, 0)
          for (let q = 0; q < g; q++) {
            const qv = hooks[l].decodeQuery!.subarray((h * g + q) * d, (h * g + q + 1) * d)
            const pos = [...keys.keys()]
            softmax(pos.map((t) => dot(qv, keys.get(t)!) / Math.sqrt(d))).forEach((pr, j) => m.set(pos[j], m.get(pos[j])! + pr))
          }
        }
      expect(dec!.heads).toEqual([])
      expect(dec!.evictions).toHaveLength(model.layers * model.kvHeads)
      for (const e of dec!.evictions!) expect(e.evict).toHaveLength(1)
      w.cache.apply(dec!)
      for (let l = 0; l < model.layers; l++)
        for (let h = 0; h < model.kvHeads; h++) {
          const entries = [...acc[l][h].entries()].sort((a, b) => a[0] - b[0])
          // the 5 newest positions are protected (recent = 0.25 x 20)
          const score = entries.map(([, v], i) => (i >= entries.length - 5 ? Infinity : v))
          const want = topIdx(score, C).map((i) => entries[i][0])
          const pos = w.cache.positions(l, h)
          expect(sorted(pos)).toEqual(want)
          for (const [t] of entries) if (!want.includes(t)) acc[l][h].delete(t)
          if (pos.some((x, i) => i > 0 && x < pos[i - 1])) reordered = true
        }
    }
    // the point of the test: slots left position order, and the scores followed the tokens
    expect(reordered).toBe(true)
  })

  it.each(['tova:tokens=20,every=1', 'knorm:tokens=20,every=1', 'streamingllm:tokens=20,sinks=3,every=1'])(
    '%s keeps the same tokens as its order-preserving run, step after step', (spec) => {
      const n = 60
      const a = world(n, 4, 21)
      const b = world(n, 4, 21)
      const pa = createPolicy(spec, model)!.start()
      const pb = createPolicy(spec, model)!.start()
      keptAfterPrefill(pa, a)
      keptAfterPrefill(pb, b)
      const ra = rng(3)
      const rb = rng(3)
      for (let s = 1; s <= 10; s++) {
        const { d: da } = step(pa, a, s, n, ra)
        const { d: db } = step(pb, b, s, n, rb)
        expect(da!.evictions!.length).toBeGreaterThan(0)
        a.cache.apply(da!)
        // the twin carries the same eviction out as a keep list: slots stay in position order
        b.cache.apply({
          heads: db!.evictions!.map((e) => {
            const len = b.cache.length(e.layer, e.head)
            const gone = new Set(e.evict)
            return { layer: e.layer, head: e.head, keep: Int32Array.from({ length: len }, (_, i) => i).filter((i) => !gone.has(i)) }
          }),
        })
        for (let l = 0; l < model.layers; l++)
          for (let h = 0; h < model.kvHeads; h++) {
            expect(sorted(a.cache.positions(l, h))).toEqual(Array.from(b.cache.positions(l, h)))
            if (spec.startsWith('streamingllm')) expect(Array.from(b.cache.positions(l, h))).toEqual([0, 1, 2, ...Array.from({ length: 17 }, (_, i) => n - 17 + s + i)])
          }
      }
    })

  it('a periodic compression that drops many tokens keeps slot order (a keep list)', () => {
    const n = 60
    const w = world(n, 4, 8)
    const p = createPolicy('h2o:tokens=20,every=8', model)!.start()
    keptAfterPrefill(p, w)
    const r = rng(4)
    for (let s = 1; s <= 8; s++) {
      const { d: dec } = step(p, w, s, n, r)
      if (s < 8) expect(dec).toBeNull()
      else {
        expect(dec!.evictions).toBeUndefined()
        w.cache.apply(dec!)
        for (let l = 0; l < model.layers; l++) for (let h = 0; h < model.kvHeads; h++) expect(w.cache.positions(l, h)).toEqual(Int32Array.from(sorted(w.cache.positions(l, h))))
      }
    }
  })
})

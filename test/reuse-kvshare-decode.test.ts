import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { ReuseError } from '../src/reuse/errors.js'
import { cached, question, words } from './kvshare-helpers.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'

// KVShare's decode-time recompute (the decode phase of DHD) on the fixture model, against independent
// references: off, generation is a plain greedy decode over the prepared cache (a twin written here);
// recomputing every stale token at the first step gives a full prefill's tokens; a query built to
// attend to one reused token gets that token recomputed, and it then holds the full prefill's KV.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const EDITS: [string, number[]][] = [
  ['an insertion in the middle', [...cached.slice(0, 70), ...words(12, 2), ...cached.slice(70)]],
  ['a replacement near the start', [...cached.slice(0, 3), ...words(9, 3), ...cached.slice(10)]],
]
const argmax = (a: Float32Array) => a.reduce((b, x, i) => (x > a[b] ? i : b), 0)

/** the twin of generate's greedy decode: the question prefilled on the cache, then one token a step */
function greedy(cache: PagedKVCache, from: number, rest: number[], maxNew: number): number[] {
  const V = model.config.vocab
  const out: number[] = []
  let logits = new Float32Array(rest.length * V)
  model.prefill(rest, cache, from, undefined, logits)
  let pos = from + rest.length
  for (let s = 0; s < maxNew; s++) {
    const next = argmax(logits.subarray(logits.length - V))
    if (model.config.eosTokenIds.includes(next)) break
    out.push(next)
    logits = new Float32Array(V)
    model.prefill([next], cache, pos++, undefined, logits)
  }
  return out
}

async function generated(share: KVShare, edited: number[], maxNew: number) {
  const ctx = await share.prepare(edited)
  const r = await model.generate([...edited, ...question], { reuse: ctx, maxNewTokens: maxNew }).result
  return { ids: r.ids, report: ctx.report }
}

describe('KVShare decode-time recompute', () => {
  it.each(EDITS)('%s, off: the tokens of a plain greedy decode over the prepared cache, and no decode report', async (_n, edited) => {
    const share = new KVShare(model, { decodeRefresh: false })
    await share.add(cached)
    const { ids, report } = await generated(share, edited, 6)
    expect(report.decode).toBeNull()
    const ctx = await share.prepare(edited)
    const h = ctx.open([...edited, ...question], model)
    expect(ids).toEqual(greedy(h.cache, edited.length, question, 6))
    h.close([], true)
  })

  it.each(EDITS)('%s, threshold 0 and every stale token: one refresh at the first step, then the full prefill tokens token for token', async (_n, edited) => {
    const share = new KVShare(model, { decodeRefresh: { threshold: 0, tokens: 100000, maxRefreshes: 5 } })
    await share.add(cached)
    const { ids, report } = await generated(share, edited, 8)
    const full = await model.generate([...edited, ...question], { maxNewTokens: 8 }).result
    expect(ids).toEqual(full.ids)
    expect(report.decode!.refreshes).toBe(1)
    // every reused, not recomputed token after the first edit was stale, and was recomputed once
    const stale = edited.length - report.exact - report.recomputed.length
    expect(report.decode!.recomputed.length).toBe(stale)
    expect(new Set(report.decode!.recomputed).size).toBe(stale)
    // after the refresh no stale token is left: the mass the later checks see is 0
    expect(report.decode!.mass.slice(1).every((m) => m === 0)).toBe(true)
  })

  it('on the insertion edit, where reuse alone changes the answer from its first token, refreshes at threshold 0.3 bring back the full prefill tokens', async () => {
    // observed on the fixture (a fixed model): the stale mass of the first step is about 0.5
    const edited = EDITS[0][1]
    const full = (await model.generate([...edited, ...question], { maxNewTokens: 8 }).result).ids
    const off = new KVShare(model, { decodeRefresh: false })
    await off.add(cached)
    expect((await generated(off, edited, 8)).ids[0]).not.toBe(full[0])
    const on = new KVShare(model, { decodeRefresh: { threshold: 0.3 } })
    await on.add(cached)
    const { ids, report } = await generated(on, edited, 8)
    expect(ids).toEqual(full)
    expect(report.decode!.refreshes).toBeGreaterThanOrEqual(1)
    expect(report.decode!.mass[0]).toBeGreaterThan(0.3)
  })

  it('is bounded: threshold 0 with one token a refresh stops after maxRefreshes, one a step', async () => {
    const share = new KVShare(model, { decodeRefresh: { threshold: 0, tokens: 1, maxRefreshes: 3 } })
    await share.add(cached)
    const { ids, report } = await generated(share, EDITS[0][1], 5)
    const d = report.decode!
    expect(d.refreshes).toBe(3)
    expect(new Set(d.recomputed).size).toBe(3)
    // one check per step until the refreshes are spent (reruns are not checked): the first three steps
    expect(ids.length).toBe(5)
    expect(d.mass.length).toBe(3)
  })

  it('a query built to attend to a reused token gets that token recomputed, to the full prefill KV, leaving the other stale tokens as they were', async () => {
    const share = new KVShare(model, { decodeRefresh: { threshold: 0.5, tokens: 1, maxRefreshes: 1 } })
    await share.add(cached)
    const edited = EDITS[0][1]
    const ctx = await share.prepare(edited)
    const { exact, recomputed } = ctx.report
    const fresh = new Set(recomputed)
    // the first stale slot: every slot before it holds the full prefill's KV, so once recomputed it must too
    // (the edited tokens are among the recomputed: stale are the others after the exact prefix)
    const n = edited.length
    const stale = Array.from({ length: n }, (_, i) => i).filter((i) => i >= exact && !fresh.has(i))
    const target = stale[0]
    const { layers, qHeads, kvHeads, headDim: d } = model.config
    const group = qHeads / kvHeads
    // per layer, every query head looks along its KV head's key of the target, scaled so its softmax peaks there
    const queries = Array.from({ length: layers }, (_, l) => {
      const q = new Float32Array(qHeads * d)
      for (let g = 0; g < kvHeads; g++) {
        const k = ctx.cache.readKeys(l, g).slice(target * d, (target + 1) * d)
        for (let h = g * group; h < (g + 1) * group; h++) k.forEach((x, c) => (q[h * d + c] = 200 * x))
      }
      return q
    })
    // the reference: the mass of each stale slot, written out
    const perSlot = new Map<number, number>()
    let mass = 0
    for (let l = 0; l < layers; l++) {
      for (let h = 0; h < qHeads; h++) {
        const k = ctx.cache.readKeys(l, Math.floor(h / group))
        const s = Array.from({ length: n }, (_, i) => k.slice(i * d, (i + 1) * d).reduce((a, x, c) => a + x * queries[l][h * d + c], 0) / Math.sqrt(d))
        const m = Math.max(...s)
        const z = s.reduce((a, x) => a + Math.exp(x - m), 0)
        for (const i of stale) {
          const p = Math.exp(s[i] - m) / z
          perSlot.set(i, (perSlot.get(i) ?? 0) + p)
          mass += p
        }
      }
    }
    mass /= layers * qHeads
    const top = [...perSlot].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0][0]
    expect(top).toBe(target)
    expect(mass).toBeGreaterThan(0.5)
    const before = Array.from({ length: layers }, (_, l) => ctx.cache.readKeys(l, 0))
    const h = ctx.open([...edited, ...question], model)
    const slotIds = [...edited, question[0]]
    // the step's token sits in the last slot, as after a decode step
    model.prefill([question[0]], h.cache, n)
    expect(ctx.refresh!.afterStep!(queries, slotIds)).toBe(true)
    expect(ctx.report.decode!.mass[0]).toBeCloseTo(mass, 5)
    expect(ctx.report.decode!.recomputed).toEqual([target])
    const full = model.newCache()
    model.prefill(edited, full, 0)
    for (let l = 0; l < layers; l++) {
      for (let g = 0; g < kvHeads; g++) {
        expect(h.cache.readKeys(l, g).slice(target * d, (target + 1) * d)).toEqual(full.readKeys(l, g).slice(target * d, (target + 1) * d))
        expect(h.cache.readValues(l, g).slice(target * d, (target + 1) * d)).toEqual(full.readValues(l, g).slice(target * d, (target + 1) * d))
      }
      // the other stale tokens keep their cached KV
      const now = h.cache.readKeys(l, 0)
      for (const i of stale) if (i !== target) expect(now.slice(i * d, (i + 1) * d)).toEqual(before[l].slice(i * d, (i + 1) * d))
    }
    // its one refresh is spent: the next check recomputes nothing
    expect(ctx.refresh!.afterStep!(queries, slotIds)).toBe(false)
    full.dispose()
    h.close([], true)
  })

  it.each([
    ['threshold 1.5', { threshold: 1.5 }],
    ['tokens 0', { tokens: 0 }],
    ['maxRefreshes -1', { maxRefreshes: -1 }],
  ])('decodeRefresh %s is a ReuseError at construction, naming the value', (name, o) => {
    const f = () => new KVShare(model, { decodeRefresh: o })
    expect(f).toThrow(ReuseError)
    expect(f).toThrow(name.split(' ').pop()!)
  })
})

/**
 * UnionKV (kvkit's own method) against a plain-loop twin of its algorithm box, on random caches: the
 * model-wide union of the votes, the per-layer top-up, the contrast stage and LagKV's query-agnostic stage;
 * LagKV's score against a straight reading of kvpress's formula and a hand-built case.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { createPolicy, PolicySpecError } from '../src/policies/registry.js'
import { lagScores } from '../src/policies/lag-score.js'
import { contrastVotes } from '../src/policies/unionkv.js'
import { blocks, keyDiffScores, massScores, maxPoolScored, rankInBlocks } from '../src/policies/block-scores.js'
import { disposeCaches, gauss, keptAfterPrefill, model, rng, snapScores, topIdx, world, type World } from './policies-reference.js'

afterEach(disposeCaches)

const W = 16

/** the votes of every (layer, head), unionkv's defaults: window 16, avg-pooled over 9, group mean */
const votesOf = (w: World) => [0, 1].map((l) => [0, 1].map((h) => snapScores(w, l, h, W, W, 'avg', 9, 'mean')))

/** LagKV's rank score, straight from kvpress's formula (lagkv_press.py), -1 where it does not score */
function lagReference(x: number[][], v: number[][], sinks: number, lag: number, tail = false): number[] {
  const n = x.length
  const out = new Array(n).fill(-1)
  if (n < sinks + 2 * lag) return out
  // tail: the last full partition too, against the (shorter) rest after it, when 16 tokens or more
  const full = Math.floor((n - sinks) / lag) - 1
  const parts = tail && n - (sinks + (full + 1) * lag) >= 16 ? full + 1 : full
  const part = (rows: number[][], p: number) => {
    const from = sinks + p * lag
    const ref = rows.slice(from + lag, from + 2 * lag)
    const d = rows[0].length
    const lo = Array.from({ length: d }, (_, c) => Math.min(...ref.map((r) => r[c])))
    const hi = Array.from({ length: d }, (_, c) => Math.max(...ref.map((r) => r[c])))
    const std = rows.slice(from, from + lag).map((r) => {
      const z = r.map((a, c) => (a - lo[c]) / (hi[c] - lo[c]))
      const m = z.reduce((a, b) => a + b, 0) / d
      return Math.sqrt(z.reduce((a, b) => a + (b - m) ** 2, 0) / (d - 1))
    })
    const e = std.map((s) => Math.exp(s - Math.max(...std)))
    const sum = e.reduce((a, b) => a + b, 0)
    return e.map((a) => a / sum)
  }
  for (let p = 0; p < parts; p++) {
    const s = part(x, p).map((a, i) => (a + part(v, p)[i]) / 2)
    const order = s.map((a, i) => [a, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1])
    order.forEach(([, i], r) => (out[sinks + p * lag + i] = r / lag))
  }
  return out
}

/** the twin: stages 1-4 of unionkv.ts's box for every (layer, head), each taking the best tokens not kept yet */
/** each slot's rank inside its block of `block` slots (the remainder joined to the last block) over the block's length, -1 before `sinks` */
function blockRankReference(raw: number[], sinks: number, block: number): number[] {
  const n = raw.length
  const out = new Array(n).fill(-1)
  const count = Math.max(1, Math.floor((n - sinks) / block))
  for (let b = 0; b < count; b++) {
    const from = sinks + b * block
    const to = b === count - 1 ? n : from + block
    const order = raw.slice(from, to).map((a, i) => [a, i]).sort((x, y) => x[0] - y[0] || x[1] - y[1])
    order.forEach(([, i], r) => (out[from + i] = r / (to - from)))
  }
  return out
}

/** KeyDiff per block, straight from the paper's formula: -cos(k_i, mean key of i's block), ranked per block */
function keyDiffReference(keys: number[][], sinks: number, block: number, ranked = true): number[] {
  const n = keys.length
  const count = Math.max(1, Math.floor((n - sinks) / block))
  const raw = new Array(n).fill(0)
  for (let b = 0; b < count; b++) {
    const from = sinks + b * block
    const rows = keys.slice(from, b === count - 1 ? n : from + block)
    const mean = rows[0].map((_, c) => rows.reduce((a, r) => a + r[c], 0))
    const norm = (x: number[]) => Math.sqrt(x.reduce((a, y) => a + y * y, 0))
    rows.forEach((r, t) => (raw[from + t] = -r.reduce((a, x, c) => a + x * mean[c], 0) / (norm(r) * norm(mean))))
  }
  return ranked ? blockRankReference(raw, sinks, block) : raw.map((x, i) => (i < sinks ? -1 : x))
}

/** H2O's attention received per query that sees the slot (n - i of them), ranked per block */
function massReference(mass: ArrayLike<number>, n: number, h: number, sinks: number, block: number): number[] {
  return blockRankReference(Array.from({ length: n }, (_, i) => mass[h * n + i] / (n - i)), sinks, block)
}

function unionReference(w: World, C: number, o: { local: number; contrast?: number; contrastShare?: number; agnostic?: number; lag?: number; values?: number[][][][]; score?: 'lag' | 'keydiff' | 'mass'; blockRank?: boolean; span?: number; lagShare?: number; tail?: boolean; lagTail?: boolean; restKeyDiff?: boolean }): number[][][] {
  const votes = votesOf(w)
  const n = votes[0][0].length
  const take = (score: number[], count: number, into: Set<number>) => {
    const free = score.map((s, i) => (into.has(i) ? -Infinity : s))
    const scored = free.filter((s) => s > -Infinity).length
    for (const i of topIdx(free, Math.max(0, Math.min(count, scored)))) into.add(i)
  }
  const maxOf = (xs: number[][]) => xs[0].map((_, i) => Math.max(...xs.map((x) => x[i])))
  const sumOf = (xs: number[][]) => xs[0].map((_, i) => xs.reduce((a, x) => a + x[i], 0))
  const half = (o.contrast ?? 0) >> 1
  const contrasted = o.contrast ? maxOf(votes.flat().map((v) => v.map((x, i) => {
    if (!Number.isFinite(x)) return x
    const near = v.slice(Math.max(0, i - half), i + half + 1).filter(Number.isFinite)
    return x / (near.reduce((a, b) => a + b, 0) / near.length + 1e-12)
  }))) : null
  return [0, 1].map((l) => [0, 1].map((h) => {
    const k = new Set<number>()
    if (o.agnostic) {
      // unscored tokens (no lag partition after them) never enter this stage; the window always does
      const raw = o.score === 'keydiff' ? keyDiffReference(w.keys[l][h], 0, o.lag!, o.blockRank ?? true)
        : o.score === 'mass' ? massReference(w.mass[l], n, h, 0, o.lag!)
          : lagReference(w.keys[l][h], o.values![l][h], 0, o.lag!, o.lagTail)
      // ranks are -1 where unscored; raw KeyDiff scores (in [-1, 1]) score every slot here (no sinks)
      const ranked = o.score !== 'keydiff' || o.blockRank !== false
      const scored = raw.map((s) => (ranked && s < 0 ? -Infinity : s))
      // span: the best scored score within span/2 slots either side
      const half = (o.span ?? 1) >> 1
      const pooled = scored.map((s, i) => (s === -Infinity ? s : Math.max(...scored.slice(Math.max(0, i - half), i + half + 1))))
      // tail: LagKV's unscored last slots (those after the last scored one) ahead of every rank, the latest first
      let lastScored = n - 1
      while (lastScored >= 0 && pooled[lastScored] === -Infinity) lastScored--
      const tailed = o.tail && o.score !== 'keydiff' && o.score !== 'mass' ? pooled.map((s, i) => (i > lastScored ? 1 + i / n : s)) : pooled
      const lag = tailed.map((s, i) => (i >= n - W ? Infinity : s))
      take(lag, Math.round(o.agnostic * C), k)
      if (o.lagShare) {
        const lag2 = lagReference(w.keys[l][h], o.values![l][h], 0, o.lag!).map((s, i) => (i >= n - W ? Infinity : s < 0 ? -Infinity : s))
        take(lag2, Math.round((o.agnostic + o.lagShare) * C) - k.size, k)
      }
      // afterRest=keydiff: KeyDiff's block ranks fill the rest of the budget
      if (o.restKeyDiff) take(keyDiffReference(w.keys[l][h], 0, o.lag!, true).map((s, i) => (i >= n - W ? Infinity : s < 0 ? -Infinity : s)), C - k.size, k)
    }
    if (contrasted) take(contrasted, Math.round(o.contrastShare! * C), k)
    take(maxOf(votes.flat()), Math.round((1 - o.local) * C) - k.size, k)
    take(sumOf(votes[l]), C - k.size, k)
    return [...k].sort((a, b) => a - b)
  }))
}

/** the values the world's cache holds, [layer][head][slot][d] */
function valuesOf(w: World): number[][][][] {
  return [0, 1].map((l) => [0, 1].map((h) => {
    const v = w.cache.readValues(l, h)
    return Array.from({ length: v.length / model.headDim }, (_, i) => Array.from(v.subarray(i * model.headDim, (i + 1) * model.headDim)))
  }))
}

describe('UnionKV', () => {
  for (const n of [70, 97]) {
    for (const C of [25, 40]) {
      for (const local of [0, 0.25, 0.4]) {
        it(`keeps the model-wide union of the votes, topped up per layer (n ${n}, ${C} tokens, local ${local})`, () => {
          const w = world(n, W, n + C + local * 100)
          const want = unionReference(w, C, { local })
          const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},local=${local},agnostic=0`, model)!, w)
          expect(kept).toEqual(want)
          // without the per-head LagKV share, the heads of a layer keep the same tokens
          for (const layer of kept) expect(layer[1]).toEqual(layer[0])
        })
      }
    }
  }
  for (const budget of [0.125, 0.25, 0.5]) {
    it(`stores exactly floor(${budget} x n) tokens in every head with its defaults`, () => {
      const n = 120
      const w = world(n, W, 7)
      const kept = keptAfterPrefill(createPolicy(`unionkv:budget=${budget}`, model)!, w)
      for (const layer of kept) {
        for (const k of layer) expect(k.length).toBe(Math.floor(budget * n))
      }
      // the window is always kept, when the budget holds it
      if (Math.floor(budget * n) >= W) for (const layer of kept) expect(layer[0].slice(-W)).toEqual(Array.from({ length: W }, (_, i) => n - W + i))
    })
  }
  for (const [span, share] of [[16, 0.25], [40, 0.5]] as const) {
    it(`with contrast=${span} first keeps the votes that stand out from their ${span} neighbours (share ${share})`, () => {
      const n = 90, C = 30
      const w = world(n, W, span)
      const want = unionReference(w, C, { local: 0.25, contrast: span, contrastShare: share })
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},contrast=${span},contrastShare=${share},agnostic=0`, model)!, w)
      expect(kept).toEqual(want)
    })
  }
  for (const [lag, agnostic, n] of [[8, 0.25, 100], [16, 0.5, 100], [16, 0.75, 70], [32, 0.5, 63], [8, 1, 90]] as const) {
    it(`with agnostic=${agnostic} each head first keeps its own top LagKV ranks (lag ${lag}, n ${n})`, () => {
      const C = 30
      const w = world(n, W, lag * 3 + n)
      const want = unionReference(w, C, { local: 0.25, agnostic, lag, values: valuesOf(w) })
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},agnostic=${agnostic},lag=${lag},agnosticScore=lag`, model)!, w)
      expect(kept).toEqual(want)
      for (const layer of kept) for (const k of layer) expect(k.length).toBe(C)
    })
  }
  for (const score of ['keydiff', 'mass'] as const) {
    for (const [lag, agnostic, n] of [[8, 0.5, 100], [16, 0.75, 70], [32, 0.5, 63]] as const) {
      it(`with agnosticScore=${score} each head first keeps its own top ${score} ranks per block (block ${lag}, share ${agnostic}, n ${n})`, () => {
        const C = 30
        const w = world(n, W, lag * 5 + n)
        const want = unionReference(w, C, { local: 0.25, agnostic, lag, score })
        const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},agnostic=${agnostic},lag=${lag},agnosticScore=${score}`, model)!, w)
        expect(kept).toEqual(want)
        for (const layer of kept) for (const k of layer) expect(k.length).toBe(C)
      })
    }
  }
  for (const [lag, n] of [[8, 100], [16, 70]] as const) {
    it(`with agnosticScore=keydiff,blockRank=false each head keeps its top raw KeyDiff scores over the whole text (block ${lag}, n ${n})`, () => {
      // the window takes 16 of the share's 25 picks (its score is +Infinity)
      const C = 50
      const w = world(n, W, lag * 7 + n)
      const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, score: 'keydiff', blockRank: false })
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},agnosticScore=keydiff,blockRank=false`, model)!, w)
      expect(kept).toEqual(want)
      // not the per-block picks: a block may give more than its share
      expect(kept).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, score: 'keydiff' }))
    })
  }
  for (const [score, span, blockRank] of [['keydiff', 5, false], ['keydiff', 3, true], ['lag', 9, true]] as const) {
    it(`with span=${span} max-pools the ${score} score before ranking (blockRank ${blockRank})`, () => {
      const n = 100, C = 50, lag = 16
      const w = world(n, W, span * 13 + (blockRank ? 1 : 0))
      const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, score, blockRank, span, values: valuesOf(w) })
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},agnosticScore=${score},blockRank=${blockRank},span=${span}`, model)!, w)
      expect(kept).toEqual(want)
      expect(kept).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, score, blockRank, values: valuesOf(w) }))
    })
  }
  it('with its defaults takes the first half of each head\'s budget by LagKV ranked per partition of 128 (n 300)', () => {
    const n = 300, C = 75
    const w = world(n, W, 300)
    const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag: 128, values: valuesOf(w) })
    const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C}`, model)!, w)
    expect(kept).toEqual(want)
    expect(kept).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.25, lagShare: 0.25, lag: 128, score: 'keydiff', values: valuesOf(w) }))
  })
  for (const [agnostic, lagShare] of [[0.25, 0.25], [0.5, 0.25]] as const) {
    it(`with agnosticScore=keydiff,lagShare=${lagShare} takes KeyDiff's ${agnostic} x C first, then LagKV's picks up to ${agnostic + lagShare} x C`, () => {
      const n = 100, C = 60, lag = 16
      const w = world(n, W, 41 + agnostic * 100)
      const want = unionReference(w, C, { local: 0.25, agnostic, lag, score: 'keydiff', lagShare, values: valuesOf(w) })
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},agnostic=${agnostic},lagShare=${lagShare},agnosticScore=keydiff`, model)!, w)
      expect(kept).toEqual(want)
      expect(kept).not.toEqual(unionReference(w, C, { local: 0.25, agnostic, lag, score: 'keydiff', values: valuesOf(w) }))
    })
  }
  it('with agnosticScore=keydiff-lag splits the agnostic share: KeyDiff\'s half, then LagKV\'s', () => {
    const n = 100, C = 60, lag = 16
    const w = world(n, W, 77)
    const want = unionReference(w, C, { local: 0.25, agnostic: 0.25, lag, score: 'keydiff', lagShare: 0.25, values: valuesOf(w) })
    expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},agnosticScore=keydiff-lag`, model)!, w)).toEqual(want)
    expect(() => createPolicy('unionkv:agnosticScore=keydiff-lag,lagShare=0.1', model)).toThrow(/lagShare must be 0, got 0.1/)
  })
  it('asks the prefill for the attention mass only with agnosticScore=mass', () => {
    expect(createPolicy('unionkv:agnosticScore=mass', model)!.needs.prefillAttentionMass).toBe(true)
    expect(createPolicy('unionkv', model)!.needs.prefillAttentionMass).toBeFalsy()
    expect(createPolicy('unionkv:agnosticScore=mass,agnostic=0', model)!.needs.prefillAttentionMass).toBeFalsy()
    expect(() => createPolicy('unionkv:agnosticScore=mass,every=4', model)).toThrow(/every must be 0, got 4/)
    expect(() => createPolicy('unionkv:agnosticScore=norm', model)).toThrow(/agnosticScore/)
    expect(() => createPolicy('unionkv:span=4', model)).toThrow(/span must be odd, got 4/)
    expect(() => createPolicy('unionkv:lagShare=0.25,agnosticScore=lag', model)).toThrow(/lagShare=0.25 needs gatesFile or agnosticScore other than lag/)
    expect(() => createPolicy('unionkv:blockRank=false,agnosticScore=lag', model)).toThrow(/blockRank=false needs agnosticScore=keydiff, got lag/)
  })
  it('with the contrast stage too, takes the LagKV share first, then the contrasted votes', () => {
    const n = 96, C = 32
    const w = world(n, W, 11)
    const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag: 16, values: valuesOf(w), contrast: 24, contrastShare: 0.25 })
    expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},agnostic=0.5,lag=16,contrast=24,agnosticScore=lag`, model)!, w)).toEqual(want)
  })
  describe('when the question is prefilled after compression (the context\'s promptAfter > 0)', () => {
    for (const [afterAgnostic, afterTail, n, lag] of [[0.75, true, 100, 16], [0.5, true, 90, 8], [1, false, 100, 16], [0.25, true, 70, 16]] as const) {
      it(`takes afterAgnostic=${afterAgnostic} of the budget by LagKV${afterTail ? ', its unscored tail first' : ''} (n ${n}, lag ${lag})`, () => {
        const C = 40
        const w = world(n, W, n + lag + afterAgnostic * 10)
        const spec = `unionkv:tokens=${C},lag=${lag},afterAgnostic=${afterAgnostic},afterTail=${afterTail ? 'always' : 'off'}`
        const want = unionReference(w, C, { local: 0.25, agnostic: afterAgnostic, lag, values: valuesOf(w), tail: afterTail })
        w.ctx.promptAfter = 12
        expect(keptAfterPrefill(createPolicy(spec, model)!, w)).toEqual(want)
        // the default setting keeps another set: the options act
        expect(want).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, values: valuesOf(w) }))
      })
    }
    for (const [afterFloor, share, tail] of [[0.3, 0.875, true], [0.15, 0.5, false]] as const) {
      it(`with afterTail=floor puts the tail first only where afterFloor=${afterFloor} raises the share (${share}, lagTail)`, () => {
        const n = 116, C = 40, lag = 32
        const w = world(n, W, 23)
        const want = unionReference(w, C, { local: 0.25, agnostic: share, lag, values: valuesOf(w), tail, lagTail: tail })
        w.ctx.promptAfter = 9
        expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},afterFloor=${afterFloor},afterTail=floor,lagTail=true`, model)!, w)).toEqual(want)
      })
    }
    it('with lagTail=true too, the tail first is only the remainder after the last ranked partition', () => {
      const n = 116, C = 40, lag = 32
      const w = world(n, W, 17)
      const want = unionReference(w, C, { local: 0.25, agnostic: 0.875, lag, values: valuesOf(w), tail: true, lagTail: true })
      expect(want).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.875, lag, values: valuesOf(w), tail: true }))
      w.ctx.promptAfter = 9
      expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},afterAgnostic=0.875,afterTail=always,lagTail=true`, model)!, w)).toEqual(want)
    })
    it('with its defaults, where the floor (7/64 of the prompt) does not bind, keeps the same set as with the question in the prompt', () => {
      const n = 100, C = 40, lag = 16
      const w = world(n, W, 6)
      const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, values: valuesOf(w) })
      w.ctx.promptAfter = 12
      expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag}`, model)!, w)).toEqual(want)
    })
    for (const [afterFloor, share, tail] of [[0.3, 0.75, true], [0.1, 0.5, false], [0.6, 1, true]] as const) {
      it(`with afterFloor=${afterFloor} takes max(agnostic, afterFloor x n / C) = ${share} of the budget by LagKV (n 100, 40 tokens)`, () => {
        const n = 100, C = 40, lag = 16
        const w = world(n, W, 21 + afterFloor * 10)
        const want = unionReference(w, C, { local: 0.25, agnostic: share, lag, values: valuesOf(w), tail })
        w.ctx.promptAfter = 12
        expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},afterFloor=${afterFloor},afterTail=${tail ? 'always' : 'off'}`, model)!, w)).toEqual(want)
      })
    }
    for (const budget of [0.125, 0.25]) {
      it(`with its defaults at budget ${budget}: step 1 takes max(0.5, 7/64 x n / C) of the budget, LagKV's tail first where that binds`, () => {
        const n = 300
        const C = Math.floor(budget * n)
        const share = Math.max(0.5, (7 / 64) * n / C)
        const w = world(n, W, 300 + budget * 8)
        const want = unionReference(w, C, { local: 0.25, agnostic: share, lag: 128, values: valuesOf(w), tail: share > 0.5 })
        const inPrompt = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag: 128, values: valuesOf(w) })
        // binds at 12.5% (0.88 of the budget), not at 25% (0.44)
        if (budget === 0.125) expect(want).not.toEqual(inPrompt)
        else expect(want).toEqual(inPrompt)
        w.ctx.promptAfter = 20
        expect(keptAfterPrefill(createPolicy(`unionkv:budget=${budget}`, model)!, w)).toEqual(want)
      })
    }
    it('with afterRest=keydiff, where the floor binds, fills the rest of the budget by KeyDiff\'s ranks instead of the votes', () => {
      const n = 300, C = 37, lag = 128
      const w = world(n, W, 91)
      const share = (7 / 64) * n / C
      const want = unionReference(w, C, { local: 0.25, agnostic: share, lag, values: valuesOf(w), tail: true, restKeyDiff: true })
      expect(want).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: share, lag, values: valuesOf(w), tail: true }))
      w.ctx.promptAfter = 20
      expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},afterRest=keydiff`, model)!, w)).toEqual(want)
    })
    it('with agnosticScore other than lag the floor does not bind (it is LagKV\'s density)', () => {
      const n = 300, C = 37
      const w = world(n, W, 88)
      const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag: 128, score: 'keydiff' })
      w.ctx.promptAfter = 20
      expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},agnosticScore=keydiff`, model)!, w)).toEqual(want)
    })
    it('changes nothing when the question is in the prompt (promptAfter 0 or absent)', () => {
      const n = 100, C = 40, lag = 16
      const want = (w: World) => unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, values: valuesOf(w) })
      const spec = `unionkv:tokens=${C},lag=${lag},afterAgnostic=1,afterTail=always,afterFloor=0.5`
      // the reference reads the values from the cache: before the policy compresses it
      const absent = world(n, W, 5)
      const wantAbsent = want(absent)
      expect(keptAfterPrefill(createPolicy(spec, model)!, absent)).toEqual(wantAbsent)
      const zero = world(n, W, 5)
      zero.ctx.promptAfter = 0
      const wantZero = want(zero)
      expect(keptAfterPrefill(createPolicy(spec, model)!, zero)).toEqual(wantZero)
    })
    for (const [n, lag, C] of [[100, 16, 40], [300, 32, 90], [70, 16, 50]] as const) {
      it(`with afterAgnostic=1,afterTail=always,sinks=4 keeps exactly lagkv's set (n ${n}, lag ${lag}, ${C} tokens)`, () => {
        // the independent reference: kvkit's LagKV port, token for token kvpress's (policies-parity-peers)
        const w = world(n, W, n * 3 + lag)
        const lagkv = keptAfterPrefill(createPolicy(`lagkv:tokens=${C},lag=${lag},sinks=4`, model)!, w)
        const again = world(n, W, n * 3 + lag)
        again.ctx.promptAfter = 30
        expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},sinks=4,afterAgnostic=1,afterTail=always`, model)!, again)).toEqual(lagkv)
      })
    }
    it('when the tail is longer than the share, keeps its latest slots', () => {
      // n 100, lag 16: partitions [0, 80) scored, slots 80..83 the tail before the window [84, 100)
      const n = 100, C = 18, lag = 16
      const w = world(n, W, 9)
      w.ctx.promptAfter = 8
      // 18 slots: the window's 16, then the tail's two latest, 83 and 82
      const kept = keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},afterAgnostic=1,afterTail=always`, model)!, w)
      for (const layer of kept) for (const k of layer) {
        expect(k.filter((i) => i >= 80)).toEqual([82, 83, ...Array.from({ length: 16 }, (_, i) => 84 + i)])
        expect(k.length).toBe(C)
      }
    })
  })
  it('with lagTail=true but no tail first (afterTail off, or the question in the prompt) keeps kvpress\'s LagKV ranks', () => {
    // n 116, lag 32: kvpress ranks [0, 64); lagTail would rank [64, 96) against the 20 tokens after it
    const n = 116, C = 40, lag = 32
    const w = world(n, W, 31)
    const want = unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, values: valuesOf(w) })
    expect(want).not.toEqual(unionReference(w, C, { local: 0.25, agnostic: 0.5, lag, values: valuesOf(w), lagTail: true }))
    expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},lagTail=true,afterTail=always`, model)!, w)).toEqual(want)
    const after = world(n, W, 31)
    after.ctx.promptAfter = 5
    expect(keptAfterPrefill(createPolicy(`unionkv:tokens=${C},lag=${lag},lagTail=true`, model)!, after)).toEqual(want)
  })
  it('names the bad option value before any work', () => {
    for (const [spec, bad] of [['unionkv:local=1.5', 'local'], ['unionkv:contrast=-4', 'contrast'], ['unionkv:agnostic=2', 'agnostic'], ['unionkv:lag=1', 'lag'], ['unionkv:kernel=4', 'kernel'], ['unionkv:afterAgnostic=1.5', 'afterAgnostic'], ['unionkv:afterFloor=-0.1', 'afterFloor']]) {
      expect(() => createPolicy(spec, model)).toThrow(bad === 'kernel' ? /kernel=4/ : new RegExp(`option ${bad}=`))
    }
  })
  it('is no longer reachable through SnapKV\'s options (snapkv is the paper\'s method)', () => {
    expect(() => createPolicy('snapkv:share=model', model)).toThrow(PolicySpecError)
    expect(() => createPolicy('snapkv:window=16,share=model,combine=max,local=0.25,rest=layer', model)).toThrow(/no option "share" \(kvkit's model-wide selection is its own method now: unionkv/)
  })
})

describe('contrastVotes', () => {
  it('divides each finite vote by the mean finite vote of its neighbourhood (hand-computed)', () => {
    const v = Float32Array.of(1, 1, 4, 1, 1, Infinity)
    const c = contrastVotes(v, 2)
    // span 2: neighbours i-1..i+1 among the finite slots
    expect(Array.from(c.subarray(0, 5)).map((x) => +x.toFixed(4))).toEqual([1, 0.5, 2, 0.5, 1])
    expect(c[5]).toBe(Infinity)
  })
  it('lifts a small spike far from the window above a large but smooth recent vote', () => {
    const v = Float32Array.from({ length: 64 }, (_, i) => (i === 10 ? 0.05 : 0.001 + (i / 64) ** 4))
    const c = contrastVotes(v, 16)
    expect(v[10]).toBeLessThan(v[63])
    expect(c[10]).toBeGreaterThan(c[63])
  })
})

describe('block scores (block-scores.ts)', () => {
  it('splits the slots after the sinks into blocks, the remainder joined to the last (hand-computed)', () => {
    expect(blocks(23, 2, 8)).toEqual([[2, 10], [10, 23]])
    expect(blocks(18, 2, 8)).toEqual([[2, 10], [10, 18]])
    expect(blocks(7, 2, 8)).toEqual([[2, 7]])
    expect(blocks(2, 2, 8)).toEqual([])
  })
  it('ranks inside each block, ties to the lower slot, the sinks unscored (hand-computed)', () => {
    const s = Float32Array.of(9, 9, 3, 1, 2, 2, 5, 0, 4)
    // sinks 2, block 3: blocks [2,5) and [5,9)
    expect(Array.from(rankInBlocks(s, 9, 2, 3, -1))).toEqual([-1, -1, 2 / 3, 0, 1 / 3, 1 / 4, 3 / 4, 0, 2 / 4].map(Math.fround))
  })
  it('KeyDiff ranks first the key pointing away from its block\'s mean (hand-computed)', () => {
    // block of 4 keys in 2-D: three along +x, one along -x; the mean points along +x
    const keys = Float32Array.of(1, 0, 1, 0.1, -1, 0, 1, -0.1)
    const s = keyDiffScores(keys, 4, 2, 0, 4, -1)
    expect(s[2]).toBe(3 / 4)
    expect(s[0]).toBe(0)
  })
  for (const [n, block, sinks] of [[40, 8, 0], [53, 8, 4], [100, 16, 2]] as const) {
    it(`KeyDiff and H2O's mass match their plain references (n ${n}, block ${block}, sinks ${sinks})`, () => {
      const r = rng(n * block + sinks)
      const d = 6
      const x = Array.from({ length: n }, () => Array.from({ length: d }, () => gauss(r)))
      const got = keyDiffScores(Float32Array.from(x.flat()), n, d, sinks, block, -1)
      expect(Array.from(got).map((a) => +a.toFixed(6))).toEqual(keyDiffReference(x, sinks, block).map((a) => +a.toFixed(6)))
      const raw = keyDiffScores(Float32Array.from(x.flat()), n, d, sinks, block, -1, false)
      const rawWant = keyDiffReference(x, sinks, block, false)
      raw.forEach((a, i) => expect(Math.abs(a - rawWant[i])).toBeLessThan(1e-6))
      const m = Float32Array.from({ length: n }, () => r() * 5)
      expect(Array.from(massScores(m, n, sinks, block, -1)).map((a) => +a.toFixed(6))).toEqual(massReference(m, n, 0, sinks, block).map((a) => +a.toFixed(6)))
    })
  }
})

describe('maxPoolScored', () => {
  it('takes the best scored neighbour within span/2, unscored slots neither give nor take (hand-computed)', () => {
    const s = Float32Array.of(-Infinity, 0.2, 0.9, 0.1, -Infinity, 0.3, 0.5)
    expect(Array.from(maxPoolScored(s, 3, -Infinity))).toEqual([-Infinity, 0.9, 0.9, 0.9, -Infinity, 0.5, 0.5].map(Math.fround))
    expect(Array.from(maxPoolScored(s, 1, -Infinity))).toEqual(Array.from(s))
  })
})

describe('LagKV score (lagScores)', () => {
  for (const [n, lag, sinks] of [[40, 8, 0], [53, 8, 4], [100, 16, 2], [20, 8, 4]] as const) {
    it(`ranks each partition against the next one as kvpress does (n ${n}, lag ${lag}, sinks ${sinks})`, () => {
      const r = rng(n + lag)
      const d = 6
      const x = Array.from({ length: n }, () => Array.from({ length: d }, () => gauss(r)))
      const v = Array.from({ length: n }, () => Array.from({ length: d }, () => gauss(r)))
      const got = lagScores(Float32Array.from(x.flat()), Float32Array.from(v.flat()), n, d, lag, sinks, -1)
      const want = lagReference(x, v, sinks, lag)
      expect(Array.from(got).map((a) => +a.toFixed(5))).toEqual(want.map((a) => +a.toFixed(5)))
    })
  }
  for (const [n, lag, sinks] of [[40, 8, 0], [100, 32, 2], [116, 32, 0], [90, 32, 4], [60, 16, 0]] as const) {
    it(`with tail=true ranks the last full partition against the rest after it, from 16 tokens (n ${n}, lag ${lag}, sinks ${sinks})`, () => {
      const r = rng(n * 7 + lag)
      const d = 6
      const x = Array.from({ length: n }, () => Array.from({ length: d }, () => gauss(r)))
      const v = Array.from({ length: n }, () => Array.from({ length: d }, () => gauss(r)))
      const got = lagScores(Float32Array.from(x.flat()), Float32Array.from(v.flat()), n, d, lag, sinks, -1, true)
      const want = lagReference(x, v, sinks, lag, true)
      expect(Array.from(got).map((a) => +a.toFixed(5))).toEqual(want.map((a) => +a.toFixed(5)))
      // where the rest is 16 tokens or more, one more partition is ranked than kvpress ranks
      const rest = n - sinks - Math.floor((n - sinks) / lag) * lag
      const scored = (s: ArrayLike<number>) => Array.from(s).filter((a) => a >= 0).length
      expect(scored(got) - scored(lagReference(x, v, sinks, lag))).toBe(rest >= 16 ? lag : 0)
    })
  }
  it('ranks first the token unlike the partition after it', () => {
    const n = 24, lag = 8, d = 4
    const r = rng(3)
    const x = Array.from({ length: n }, () => Array.from({ length: d }, () => 0.1 * gauss(r)))
    x[5] = [3, -3, 3, -3]
    const flat = Float32Array.from(x.flat())
    const s = lagScores(flat, flat, n, d, lag, 0, -1)
    expect(s[5]).toBe((lag - 1) / lag)
    expect(Array.from(s.subarray(16))).toEqual(new Array(8).fill(-1))
  })
})

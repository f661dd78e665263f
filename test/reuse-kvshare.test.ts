import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { KVShare } from '../src/reuse/kvshare.js'
import { computeChunk, MemoryChunkStore, placeRows } from '../src/reuse/chunk-kv.js'
import { alignTokens } from '../src/reuse/token-align.js'
import { ReuseError } from '../src/reuse/errors.js'
import { cached, question, words } from './kvshare-helpers.js'

// KVShare on the fixture model, end to end: an unedited repeat is the cached KV as it was; at ratio 1
// an edited request is a full prefill bit for bit; below it, the layers up to the check layer are a
// full prefill's, the edited tokens are always recomputed and the rest of the recompute is the ratio
// of the tokens after the first edit, and what is not recomputed keeps the cached (re-rotated) KV.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const V = () => model.config.vocab

/** the edits of the grid: the cached context with a span inserted, deleted or replaced */
const EDITS: [string, number[]][] = [
  ['an insertion in the middle', [...cached.slice(0, 70), ...words(12, 2), ...cached.slice(70)]],
  ['a deletion in the middle', [...cached.slice(0, 40), ...cached.slice(55)]],
  ['a replacement near the start', [...cached.slice(0, 3), ...words(9, 3), ...cached.slice(10)]],
  ['a replacement near the end', [...cached.slice(0, 150), ...words(4, 4), ...cached.slice(155)]],
  ['an extension', [...cached, ...words(20, 5)]],
]

/** logits of the question's positions over the prepared context */
async function questionLogits(share: KVShare, ctxIds: number[]) {
  const ctx = await share.prepare(ctxIds)
  const h = ctx.open([...ctxIds, ...question], model)
  const out = new Float32Array(question.length * V())
  model.prefill(question, h.cache, h.cachedTokens, undefined, out)
  return { out, ctx, h }
}
const fullLogits = (ctxIds: number[]) => {
  const ids = [...ctxIds, ...question]
  return model.logits(ids).slice(ctxIds.length * V())
}

describe('KVShare on a repeat', () => {
  it('an unedited repeat reuses every token as it was, recomputes none, and gives the full prefill logits bit for bit', async () => {
    const share = new KVShare(model)
    const first = await share.prepare(cached)
    expect(first.report).toMatchObject({ hit: false, reused: 0, edited: cached.length })
    first.dispose()
    const { out, ctx, h } = await questionLogits(share, cached)
    expect(ctx.report).toMatchObject({ hit: true, sourceTokens: cached.length, reused: cached.length, exact: cached.length, edited: 0 })
    expect(ctx.report.recomputed.length).toBe(0)
    expect(out).toEqual(fullLogits(cached))
    h.close([], true)
  })

  it('an unedited repeat through generate({ reuse }) gives the full prefill tokens and reports them cached', async () => {
    const share = new KVShare(model, { ratio: 0.15 })
    await share.add(cached)
    const ctx = await share.prepare(cached)
    const r = await model.generate([...cached, ...question], { reuse: ctx, maxNewTokens: 8 }).result
    expect(r.stats.cachedTokens).toBe(cached.length)
    expect(r.ids).toEqual((await model.generate([...cached, ...question], { maxNewTokens: 8 }).result).ids)
  })
})

describe('KVShare at ratio 1', () => {
  it.each(EDITS)('%s gives the full prefill logits bit for bit', async (_name, edited) => {
    const share = new KVShare(model, { ratio: 1 })
    await share.add(cached)
    const { out, ctx, h } = await questionLogits(share, edited)
    expect(ctx.report.hit).toBe(true)
    expect(out).toEqual(fullLogits(edited))
    h.close([], true)
  })
})

describe('KVShare below ratio 1', () => {
  it.each(EDITS.flatMap(([name, edited]) => [[name, 0.15, 1, edited], [name, 0, 2, edited]] as [string, number, number, number[]][]))(
    '%s, ratio %f, check layer %i: layers to the check layer are a full prefill; the edited tokens plus round(ratio x the rest after the edit) recomputed',
    async (_name, ratio, checkLayer, edited) => {
      const share = new KVShare(model, { ratio, checkLayer })
      await share.add(cached)
      const ctx = await share.prepare(edited)
      const { exact, edited: nEdited, reused, recomputed } = ctx.report
      // the independent view of the edit: common prefix, and tokens absent from the cached request
      let prefix = 0
      while (cached[prefix] === edited[prefix]) prefix++
      expect(exact).toBe(prefix)
      expect(reused + nEdited).toBe(edited.length)
      const candidates = edited.length - exact - nEdited
      expect(recomputed.length).toBe(nEdited + Math.round(ratio * candidates))
      expect(Array.from(recomputed).every((s) => s >= exact)).toBe(true)
      const full = model.newCache()
      model.prefill(edited, full, 0)
      for (let h = 0; h < model.config.kvHeads; h++) {
        for (let l = 0; l <= checkLayer; l++) expect(ctx.cache.readKeys(l, h)).toEqual(full.readKeys(l, h))
        // every recomputed token is a full prefill's in the last layer only if all before it were; the
        // exact prefix is, in every layer
        const last = model.config.layers - 1
        const d = model.config.headDim
        expect(ctx.cache.readKeys(last, h).slice(0, exact * d)).toEqual(full.readKeys(last, h).slice(0, exact * d))
      }
      full.dispose()
      ctx.dispose()
    },
  )

  it.each(EDITS.slice(0, 3))('%s at ratio 0.15: the chosen tokens are the top by key deviation at the check layer, the rest keep the re-rotated cached KV', async (_name, edited) => {
    const share = new KVShare(model, { ratio: 0.15, checkLayer: 1 })
    await share.add(cached)
    const ctx = await share.prepare(edited)
    // the reference: the full prefill's keys at the check layer against the cached keys moved into place
    const align = alignTokens(cached, edited)!
    const placed = model.newCache()
    placeRows(model, placed, computeChunk(model, cached), align.source, 0)
    const full = model.newCache()
    model.prefill(edited, full, 0)
    const d = model.config.headDim
    const N = edited.length
    const dev = new Float64Array(N)
    for (let h = 0; h < model.config.kvHeads; h++) {
      const a = full.readKeys(1, h)
      const b = placed.readKeys(1, h)
      for (let i = 0; i < N * d; i++) dev[Math.floor(i / d)] += (a[i] - b[i]) ** 2
    }
    const edits = Array.from({ length: N }, (_, j) => j).filter((j) => align.source[j] < 0)
    const others = Array.from({ length: N }, (_, j) => j).filter((j) => j >= align.firstEdit && align.source[j] >= 0)
    const top = others.sort((x, y) => dev[y] - dev[x] || x - y).slice(0, Math.round(0.15 * others.length))
    const want = [...edits, ...top].sort((x, y) => x - y)
    expect(Array.from(ctx.report.recomputed)).toEqual(want)
    const last = model.config.layers - 1
    const kept = ctx.cache.readKeys(last, 0)
    const reused = placed.readKeys(last, 0)
    const chosen = new Set(want)
    for (let t = align.firstEdit; t < N; t++) {
      const same = kept.subarray(t * d, (t + 1) * d).every((x, c) => x === reused[t * d + c])
      if (!chosen.has(t)) expect(same).toBe(true)
    }
    for (const c of [placed, full]) c.dispose()
    ctx.dispose()
  })

  it('an edited request through generate({ reuse }) answers with every context token reported cached', async () => {
    const share = new KVShare(model)
    await share.add(cached)
    const [, edited] = EDITS[0]
    const ctx = await share.prepare(edited)
    const r = await model.generate([...edited, ...question], { reuse: ctx, maxNewTokens: 4 }).result
    expect(r.stats.cachedTokens).toBe(edited.length)
    expect(r.ids.length).toBe(4)
  })
})

describe('KVShare choosing and keeping cached requests', () => {
  it('a context aligning on less than minReuse is a miss: prefilled in full, then cached', async () => {
    const store = new MemoryChunkStore()
    const share = new KVShare(model, { minReuse: 0.5, store })
    await share.add(cached)
    const other = [0, ...words(100, 7)]
    const ctx = await share.prepare(other)
    expect(ctx.report).toMatchObject({ hit: false, reused: 0 })
    expect([share.requests, store.size]).toEqual([2, 2])
    ctx.dispose()
  })

  it('picks the cached request the context shares the most tokens with', async () => {
    const share = new KVShare(model, { minReuse: 0.3 })
    const a = [0, ...words(80, 11)]
    const b = [0, ...words(80, 12)]
    await share.add(a)
    await share.add(b)
    const ctx = await share.prepare([...a.slice(0, 30), ...words(5, 13), ...a.slice(30)])
    expect(ctx.report).toMatchObject({ hit: true, sourceTokens: a.length, reused: a.length })
    ctx.dispose()
  })

  it('beyond maxRequests the least recently used request leaves the index and the store', async () => {
    const store = new MemoryChunkStore()
    const share = new KVShare(model, { maxRequests: 2, store })
    const [a, b, c] = [11, 12, 13].map((s) => [0, ...words(30, s)])
    await share.add(a)
    await share.add(b)
    ;(await share.prepare(a)).dispose() // a is now the most recently used
    await share.add(c)
    expect([share.requests, store.size]).toEqual([2, 2])
    expect((await share.prepare(a)).report.hit).toBe(true)
    expect((await share.prepare(b)).report.hit).toBe(false)
  })
})

describe('KVShare.match and KVShare.keep (what a server uses)', () => {
  it('match on a miss computes and caches nothing; keep caches rows computed elsewhere, and match then reuses them as prepare does', async () => {
    const share = new KVShare(model, { ratio: 1 })
    const [, edited] = EDITS[0]
    expect(await share.match(edited)).toBeUndefined()
    expect(share.requests).toBe(0)
    await share.keep(computeChunk(model, cached))
    const ctx = (await share.match(edited))!
    expect(ctx.report).toMatchObject({ hit: true, sourceTokens: cached.length })
    const full = model.newCache()
    model.prefill(edited, full, 0)
    expect(ctx.cache.readKeys(model.config.layers - 1, 0)).toEqual(full.readKeys(model.config.layers - 1, 0))
    full.dispose()
    ctx.dispose()
    // the overlap a scheduler expects: the tokens the edited context shares with the kept one
    expect(share.overlap(edited)).toBe(cached.length)
  })

  it('keep refuses rows that do not match the ids or the model', async () => {
    const share = new KVShare(model)
    const kv = computeChunk(model, cached)
    await expect(share.keep({ ...kv, ids: cached.slice(1) })).rejects.toThrow(ReuseError)
    await expect(share.keep({ ...kv, k: kv.k.slice(1) })).rejects.toThrow(`want ${model.config.layers} layers`)
    expect(share.requests).toBe(0)
  })
})

describe('KVShare misuse', () => {
  it.each([
    ['ratio 2', () => new KVShare(model, { ratio: 2 })],
    ['checkLayer -1', () => new KVShare(model, { checkLayer: -1 })],
    ['selection "best"', () => new KVShare(model, { selection: 'best' as never })],
    ['minReuse 1.5', () => new KVShare(model, { minReuse: 1.5 })],
    ['maxRequests 0', () => new KVShare(model, { maxRequests: 0 })],
  ])('%s is a ReuseError at construction, naming the value', (name, f) => {
    expect(f).toThrow(ReuseError)
    expect(f).toThrow(name.split(' ').pop()!.replace(/"/g, ''))
  })

  it.each([
    ['no tokens', [] as number[], ReuseError],
    ['not an array', 'abc' as unknown as number[], ReuseError],
    ['a token outside the vocabulary', [0, 99999], ModelInputError],
    ['a context filling every position', Array.from({ length: 8192 }, () => 5), ReuseError],
  ])('%s is refused by prepare and add before any work, leaving the cache as it was', async (_n, ids, type) => {
    const share = new KVShare(model)
    await share.add(cached)
    await expect(share.prepare(ids)).rejects.toThrow(type)
    await expect(share.add(ids)).rejects.toThrow(type)
    expect(share.requests).toBe(1)
    expect((await share.prepare(cached)).report.exact).toBe(cached.length)
  })
})

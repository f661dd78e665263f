import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { Sequence } from '../src/reuse/sequence.js'
import { ReuseError } from '../src/reuse/errors.js'

// Sequences across requests on the fixture model: a conversation's turns, forks (n > 1) and rollbacks
// each give the tokens a fresh generation of the same whole prompt gives.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const fresh = async (ids: number[], o: Parameters<LlamaModel['generate']>[1] = {}) => (await model.generate(ids, { maxNewTokens: 6, ...o }).result).ids

describe('a sequence across turns', () => {
  it.each([[1, 16], [37, 64], [130, 16]])('a second turn (first prompt %i tokens, pages of %i) prefills only its own tokens and answers as the whole prompt does', async (n1, pt) => {
    const seq = Sequence.create(model, { pageTokens: pt })
    const p1 = [0, ...words(n1 - 1, 1)]
    const r1 = await model.generate(p1, { reuse: seq, maxNewTokens: 5 }).result
    expect(r1.ids).toEqual(await fresh(p1, { maxNewTokens: 5 }))
    expect(r1.stats.cachedTokens).toBe(0)
    expect(seq.tokens).toEqual([...p1, ...r1.ids])
    expect(seq.committed).toBe(p1.length + r1.ids.length)
    const p2 = words(9, 2)
    const r2 = await model.generate(p2, { reuse: seq, maxNewTokens: 6 }).result
    // the cache held the first prompt and the answer but its last token, which was never fed back
    expect(r2.stats.cachedTokens).toBe(p1.length + r1.ids.length - 1)
    expect(r2.ids).toEqual(await fresh([...p1, ...r1.ids, ...p2]))
    seq.dispose()
  })

  it('an aborted turn rolls back to the last committed token, and the next turn answers as if it never ran', async () => {
    const seq = Sequence.create(model)
    const p1 = [0, ...words(40, 3)]
    const r1 = await model.generate(p1, { reuse: seq, maxNewTokens: 3 }).result
    const committed = [...seq.tokens]
    const ac = new AbortController()
    const g = model.generate(words(300, 4), { reuse: seq, signal: ac.signal, maxNewTokens: 50, onToken: () => ac.abort() })
    await expect(g.result).rejects.toThrow()
    expect(seq.tokens).toEqual(committed)
    // the aborted prefill had fed the answer's last token: the cache keeps it, it is committed history
    expect(seq.cachedTokens).toBe(p1.length + r1.ids.length)
    const p3 = words(7, 5)
    expect((await model.generate(p3, { reuse: seq, maxNewTokens: 6 }).result).ids).toEqual(await fresh([...committed, ...p3]))
    seq.dispose()
  })

  it('rollback(k) drops tokens from the history and the cache; the next turn continues from token k', async () => {
    const seq = Sequence.create(model, { pageTokens: 16 })
    const p = [0, ...words(80, 6)]
    await seq.feed(p)
    seq.commit()
    seq.rollback(33)
    expect(seq.tokens).toEqual(p.slice(0, 33))
    expect(seq.cachedTokens).toBe(33)
    expect(seq.committed).toBe(33)
    const q = words(5, 7)
    expect((await model.generate(q, { reuse: seq, maxNewTokens: 6 }).result).ids).toEqual(await fresh([...p.slice(0, 33), ...q]))
    seq.dispose()
  })

  it('feed returns the logits a full forward pass gives after the last token', async () => {
    const seq = Sequence.create(model)
    const p = [0, ...words(50, 8)]
    await seq.feed(p.slice(0, 20))
    const last = await seq.feed(p.slice(20))
    const all = model.logits(p)
    const V = model.config.vocab
    const want = all.subarray((p.length - 1) * V)
    let worst = 0
    for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(last[i] - want[i]))
    expect(worst).toBeLessThan(1e-4)
    seq.dispose()
  })
})

describe('forks', () => {
  it('n = 3 sampled answers from one prefill: each equals a fresh generation with its seed, and the prompt pages are held once', async () => {
    const root = Sequence.create(model)
    const p = [0, ...words(200, 9)]
    await root.feed(p.slice(0, -1))
    root.commit()
    const before = root.cache.store.liveBytes.wasm
    const forks = [0, 1, 2].map(() => root.fork())
    expect(root.cache.store.liveBytes.wasm).toBe(before)
    const answers = await Promise.all(forks.map((f, seed) => model.generate([p[p.length - 1]], { reuse: f, temperature: 1, seed, maxNewTokens: 6 }).result))
    for (const [seed, a] of answers.entries()) expect(a.ids).toEqual(await fresh(p, { temperature: 1, seed }))
    // each fork wrote its own last page and its answer; the rest stays shared
    expect(root.cache.store.liveBytes.wasm).toBeLessThan(2 * before)
    expect(root.tokens).toEqual(p.slice(0, -1))
    for (const f of forks) f.dispose()
    root.dispose()
  })
})

describe('misuse', () => {
  it.each([
    ['a second generation while one runs', async (s: Sequence) => {
      const g = model.generate([0, 5, 6], { reuse: s, maxNewTokens: 2 })
      try {
        model.generate([7], { reuse: s })
      } finally {
        await g.result
      }
    }, ReuseError],
    ['rollback past the history', async (s: Sequence) => s.rollback(99), ReuseError],
    ['rollback to a fraction', async (s: Sequence) => s.rollback(1.5), ReuseError],
    ['a policy with reuse', async (s: Sequence) => model.generate([5], { reuse: s, policy: 'snapkv:budget=0.5' }), ModelInputError],
    ['pageTokens 0', async () => Sequence.create(model, { pageTokens: 0 }), ReuseError],
    ['no model', async () => Sequence.create(null as unknown as LlamaModel), ReuseError],
    ['options that are not an object', async () => Sequence.create(model, 64 as unknown as { pageTokens?: number }), ReuseError],
    ['use after dispose', async (s: Sequence) => {
      s.dispose()
      await s.feed([5])
    }, ReuseError],
  ])('%s is refused with a typed error, and the sequence keeps its tokens', async (name, call, type) => {
    const s = Sequence.create(model)
    await s.feed([0, 3, 4])
    s.commit()
    await expect(call(s)).rejects.toThrow(type)
    // the running generation finished and committed its turn; the others changed nothing
    if (name.startsWith('a second')) expect(s.tokens.slice(0, 6)).toEqual([0, 3, 4, 0, 5, 6])
    else if (name !== 'use after dispose') expect(s.tokens).toEqual([0, 3, 4])
  })

  it('a disposed sequence reports no cached tokens instead of throwing from its getter', async () => {
    const s = Sequence.create(model)
    await s.feed([0, 3, 4])
    await model.generate([5], { reuse: s, maxNewTokens: 1 }).result
    expect(s.cachedTokens).toBeGreaterThan(0)
    s.dispose()
    expect(s.cachedTokens).toBe(0)
  })
})

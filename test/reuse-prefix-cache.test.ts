import { createHash } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { PrefixCache } from '../src/reuse/prefix-cache.js'
import { blockHashes } from '../src/reuse/block-hash.js'
import { LfuEviction, LruEviction, S3FifoEviction, type BlockEviction } from '../src/reuse/block-eviction.js'
import { ReuseError } from '../src/reuse/errors.js'

// The prefix cache on the fixture model through generate({ reuse }), its chained block hashes against
// node:crypto, and its eviction policies against hand-worked orders.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

describe('chained block hashes', () => {
  it('are SHA-256(parent || tokens as uint32 LE) from SHA-256 of the salt, as node:crypto computes them', () => {
    const ids = words(37, 1)
    const sha = (b: Uint8Array) => createHash('sha256').update(b).digest()
    let parent = sha(new TextEncoder().encode('kvkit prefix v1\0tenant-a'))
    const want: string[] = []
    for (let b = 0; b < 4; b++) {
      const buf = Buffer.alloc(32 + 32)
      parent.copy(buf)
      for (let i = 0; i < 8; i++) buf.writeUInt32LE(ids[b * 8 + i], 32 + 4 * i)
      parent = sha(buf)
      want.push(parent.toString('hex'))
    }
    expect(blockHashes(ids, 8, 'tenant-a')).toEqual(want)
  })

  it('are the same in every process: a fixed prompt has a fixed first key', () => {
    expect(blockHashes([1, 2, 3, 4], 4, '')[0]).toBe(createHash('sha256').update(Buffer.concat([
      createHash('sha256').update('kvkit prefix v1\0').digest(), Buffer.from(Uint32Array.of(1, 2, 3, 4).buffer),
    ])).digest('hex'))
  })

  it('depend on everything before: one changed token changes its block and every later key, not earlier ones', () => {
    const a = words(64, 2)
    const b = a.slice()
    b[20] += 1
    const ha = blockHashes(a, 16, 's')
    const hb = blockHashes(b, 16, 's')
    expect(hb[0]).toBe(ha[0])
    for (let i = 1; i < 4; i++) expect(hb[i]).not.toBe(ha[i])
    expect(blockHashes(a, 16, 't').some((h, i) => h === ha[i])).toBe(false)
  })
})

describe('a prompt found in the prefix cache', () => {
  it.each([
    // prompt tokens, tokens shared with the earlier prompt, blockTokens
    [300, 250, 16],
    [300, 300, 16],
    [129, 64, 64],
    [200, 17, 8],
    [100, 5, 16],
  ])('(%i tokens, %i shared, blocks of %i) prefills only the rest, with the same greedy answer and logits within 1e-4', async (n, shared, bt) => {
    const pc = new PrefixCache(model, { blockTokens: bt })
    const ids = [0, ...words(n - 1, 3)]
    const earlier = [...ids.slice(0, shared), ...words(n - shared, 4)]
    await model.generate(earlier, { reuse: pc, maxNewTokens: 1 }).result
    const found = Math.floor(Math.min(shared, earlier.length - 1, n - 1) / bt) * bt
    expect(pc.cachedPrefix(ids)).toBe(found)
    const r = await model.generate(ids, { reuse: pc, maxNewTokens: 5 }).result
    expect(r.stats.cachedTokens).toBe(found)
    expect(r.ids).toEqual((await model.generate(ids, { maxNewTokens: 5 }).result).ids)
    // the logits of every prefilled position against a full forward pass
    const h = pc.open(ids, model)
    const V = model.config.vocab
    const out = new Float32Array((n - h.cachedTokens) * V)
    model.prefill(ids.slice(h.cachedTokens), h.cache, h.cachedTokens, undefined, out)
    const full = model.logits(ids).subarray(h.cachedTokens * V)
    let worst = 0
    for (let i = 0; i < out.length; i++) worst = Math.max(worst, Math.abs(out[i] - full[i]))
    expect(worst).toBeLessThan(1e-4)
    h.close([], false)
    pc.dispose()
  })

  it("another tenant's salt gets zero hits on the same prompt; the same tenant gets them all", async () => {
    const pc = new PrefixCache(model)
    const ids = [0, ...words(160, 5)]
    await model.generate(ids, { reuse: pc.tenant('alice'), maxNewTokens: 1 }).result
    const bob = await model.generate(ids, { reuse: pc.tenant('bob'), maxNewTokens: 1 }).result
    expect(bob.stats.cachedTokens).toBe(0)
    const alice = await model.generate(ids, { reuse: pc.tenant('alice'), maxNewTokens: 1 }).result
    expect(alice.stats.cachedTokens).toBe(160)
    expect((await model.generate(ids, { reuse: pc, maxNewTokens: 1 }).result).stats.cachedTokens).toBe(0)
    pc.dispose()
  })

  it('a second turn finds the first answer too (its full blocks enter the cache when the request ends)', async () => {
    const pc = new PrefixCache(model, { blockTokens: 8 })
    const p1 = [0, ...words(40, 6)]
    const r1 = await model.generate(p1, { reuse: pc, maxNewTokens: 20 }).result
    const r2 = await model.generate([...p1, ...r1.ids, 5, 6], { reuse: pc, maxNewTokens: 2 }).result
    const held = p1.length + r1.ids.length - 1
    expect(r2.stats.cachedTokens).toBe(Math.floor(held / 8) * 8)
    pc.dispose()
  })

  it('shares pages, not copies: a hit adds no page for the blocks it found', async () => {
    const pc = new PrefixCache(model, { blockTokens: 16 })
    const ids = [0, ...words(320, 7)]
    await model.generate(ids, { reuse: pc, maxNewTokens: 1 }).result
    const live = pc.store.liveBytes.wasm
    expect(live).toBe(pc.size * pc.blockBytes)
    const h = pc.open(ids, model)
    expect(pc.store.liveBytes.wasm).toBe(live)
    h.close([], true)
    pc.dispose()
    expect(pc.store.liveBytes.wasm).toBe(0)
  })
})

describe('capacity', () => {
  it.each(['lru', 'lfu', 's3fifo'] as const)('%s: never more than maxBlocks once requests end, pages freed with their blocks, held blocks kept', async (eviction) => {
    const pc = new PrefixCache(model, { blockTokens: 16, maxBlocks: 6, eviction })
    const hot = [0, ...words(64, 8)]
    for (let i = 0; i < 5; i++) {
      await model.generate([...hot, ...words(40, 10 + i)], { reuse: pc, maxNewTokens: 1 }).result
      expect(pc.size).toBeLessThanOrEqual(6)
      expect(pc.store.liveBytes.wasm).toBe(pc.size * pc.blockBytes)
    }
    // a request holds its blocks while it runs, beyond the limit; they go when it ends
    const long = [0, ...words(200, 20)]
    const h = pc.open(long, model)
    model.prefill(long.slice(h.cachedTokens, 200), h.cache, h.cachedTokens)
    h.prefilled(200)
    expect(pc.size).toBeGreaterThan(6)
    h.close([], true)
    expect(pc.size).toBeLessThanOrEqual(6)
    pc.dispose()
  })

  it.each([
    ['blockTokens 0', { blockTokens: 0 }],
    ['maxBlocks 1.5', { maxBlocks: 1.5 }],
    ['eviction "fifo"', { eviction: 'fifo' as never }],
  ])('refuses %s with a ReuseError', (_n, o) => {
    expect(() => new PrefixCache(model, o)).toThrow(ReuseError)
  })

  it('refuses a policy with the prefix cache (ModelInputError), holding nothing', () => {
    const pc = new PrefixCache(model)
    expect(() => model.generate([0, 1, 2], { reuse: pc, policy: 'streamingllm:budget=0.5' })).toThrow(ModelInputError)
    expect(pc.stats.requests).toBe(0)
  })
})

/** keys the policy drops in turn while `may` holds for all (each victim removed as it goes) */
function drain(p: BlockEviction, may: (k: string) => boolean = () => true): string[] {
  const out: string[] = []
  for (let k = p.victim(may); k !== undefined; k = p.victim(may)) {
    out.push(k)
    p.remove(k)
  }
  return out
}

describe('eviction orders (hand-worked)', () => {
  it('LRU drops the least recently used first and skips what it may not drop', () => {
    const p = new LruEviction()
    for (const k of 'abcd') p.insert(k)
    p.access('a')
    p.access('c')
    expect(drain(p, (k) => k !== 'd')).toEqual(['b', 'a', 'c'])
  })

  it('LFU drops the least used, ties to the least recently used', () => {
    const p = new LfuEviction()
    for (const k of 'abcd') p.insert(k)
    p.access('a')
    p.access('a')
    p.access('c')
    p.access('b')
    expect(drain(p)).toEqual(['d', 'c', 'b', 'a'])
  })

  it('S3-FIFO drops one-hit blocks from the small queue first, promotes the re-used ones to main, and readmits a ghost to main', () => {
    const p = new S3FifoEviction(10) // small queue: 1 of 10
    for (const k of 'abc') p.insert(k)
    p.access('b')
    // a (not re-used) goes; b moves to main on the way; then c
    expect(p.victim(() => true)).toBe('a')
    p.remove('a')
    expect(p.victim(() => true)).toBe('c')
    p.remove('c')
    // a comes back while its key is in ghost: it enters main behind b and is dropped after b
    p.insert('a')
    p.insert('e')
    expect(drain(p)).toEqual(['e', 'b', 'a'])
  })
})

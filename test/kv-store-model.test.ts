import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { defaultModelDir } from '../src/eval/paths.js'

// Sequences forked from one prompt prefix on the fixture model: the prefix's pages are held once, and
// each sequence decodes exactly as it would alone (bench/store.ts runs the same at 4096 tokens).
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const PREFIX = 500 // ends inside a page of 64: the forks' first appends copy that page
const prefix = [0, ...Array.from({ length: PREFIX - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]

/** greedy decode of `steps` tokens from `first` at position `pos`; every step's logits */
function decode(cache: PagedKVCache, first: number, steps: number): { ids: number[]; logits: Float32Array[] } {
  const ids: number[] = []
  const logits: Float32Array[] = []
  let token = first
  for (let s = 0; s < steps; s++) {
    const out = new Float32Array(model.config.vocab)
    model.forward.step([token], Int32Array.of(PREFIX + s), cache, { decode: true, logits: 'last', out })
    logits.push(out)
    token = out.indexOf(Math.max(...out))
    ids.push(token)
  }
  return { ids, logits }
}

/** decode() through the asynchronous step, which awaits the rows of host-tier pages */
async function decodeAsync(cache: PagedKVCache, first: number, steps: number): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const ids: number[] = []
  const logits: Float32Array[] = []
  let token = first
  for (let s = 0; s < steps; s++) {
    const out = new Float32Array(model.config.vocab)
    await model.forward.stepAsync([token], Int32Array.of(PREFIX + s), cache, { decode: true, logits: 'last', out })
    logits.push(out)
    token = out.indexOf(Math.max(...out))
    ids.push(token)
  }
  return { ids, logits }
}

describe.each([['float32', 4], ['float16', 2]] as const)('forked sequences on the fixture model, %s KV', (kvDtype, elementBytes) => {
  const newCache = () => model.newCache('post-rope', 64, kvDtype)
  it('share the prefix pages (held once) and each decodes exactly as it would alone', () => {
    const alone = [11, 4242].map((first) => {
      const c = newCache()
      model.prefill(prefix, c)
      const r = decode(c, first, 6)
      c.dispose()
      return r
    })
    const a = newCache()
    model.prefill(prefix, a)
    const prefixLive = a.store.liveBytes.wasm
    const b = a.fork()
    expect(a.store.liveBytes.wasm).toBe(prefixLive)
    const forked = [decode(a, 11, 6), decode(b, 4242, 6)]
    forked.forEach((f, i) => {
      expect(f.ids).toEqual(alone[i].ids)
      f.logits.forEach((l, s) => expect(Array.from(l)).toEqual(Array.from(alone[i].logits[s])))
    })
    // 500 + 6 tokens fit the 8 pages each head already had: the one extra page per head and side is the
    // copy of the partly filled last page the first writer made; the other 7 pages stay shared
    const { layers, kvHeads, headDim } = model.config
    const pageBytes = 64 * headDim * elementBytes
    expect(a.store.liveBytes.wasm).toBe(prefixLive + layers * kvHeads * 2 * pageBytes)
    expect(a.bytes().shared).toBe(layers * kvHeads * 7 * 64 * 2 * headDim * elementBytes)
    a.dispose()
    b.dispose()
  })

  it('decode awaiting host-tier fetches gives the tokens of the arena cache; arena-only, it is the synchronous step bit for bit', async () => {
    const a = newCache()
    model.prefill(prefix, a)
    const host = a.fork()
    const moved = host.moveTo('host')
    expect(moved).toBe(a.bytes().reserved - a.store.pooledBytes - tableBytes(a))
    expect(host.bytes().hot).toBe(0)
    const arena = a.fork()
    const sync = decode(a, 11, 6)
    const viaHost = await decodeAsync(host, 11, 6)
    const viaArena = await decodeAsync(arena, 11, 6)
    expect(viaHost.ids).toEqual(sync.ids)
    // the host rows are attended as one staged part, the arena's page by page: float32 rounding apart (relative to the logit)
    viaHost.logits.forEach((l, s) => l.forEach((x, i) => expect(Math.abs(x - sync.logits[s][i])).toBeLessThan(1e-4 * Math.max(1, Math.abs(x)))))
    viaArena.logits.forEach((l, s) => expect(Array.from(l)).toEqual(Array.from(sync.logits[s])))
    for (const c of [a, host, arena]) c.dispose()
  })
})

/** bytes of the page tables a cache holds (reserved counts them; moves copy only pages) */
function tableBytes(c: PagedKVCache): number {
  const { layers, kvHeads } = c.options
  let b = 0
  for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) b += 2 * 4 * Math.max(4, Math.ceil(c.length(l, h) / 64))
  return b
}

import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { loadChunks, MemoryChunkStore, type ChunkKV, type ChunkStore } from '../src/reuse/chunk-kv.js'

// loadChunks awaited each computed chunk's write before computing the next: a tier's write latency
// (a file, Redis over the network) was paid once a chunk on top of the compute. A write now goes on
// behind the next chunk's compute, and a missing chunk computes while the later chunks' reads are on
// their way; the call still settles only after its writes, and a failed read or write is thrown.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const chunks = [
  [11, 12, 13, 14, 15, 16],
  [21, 22, 23, 24],
  [31, 32, 33, 34, 35],
]

/** a tier whose read of chunk i takes readMs x (i + 1) and a write writeMs, logging when each starts and ends (and, through slowWorld, when the model computes) */
class SlowStore implements ChunkStore {
  readonly log: string[] = []
  readonly inner = new MemoryChunkStore()
  /** the chunks' keys, in order */
  readonly keys: string[] = []
  constructor(private readonly readMs: number, private readonly writeMs: number, private readonly failWrite: number, private readonly failRead: number) {}
  private name(key: string): number {
    return this.keys.indexOf(key)
  }
  async get(key: string): Promise<ChunkKV | undefined> {
    const i = this.name(key)
    this.log.push(`get ${i}`)
    await new Promise((r) => setTimeout(r, this.readMs * (i + 1)))
    this.log.push(`got ${i}`)
    if (i === this.failRead) throw new Error(`read ${i} failed`)
    return this.inner.get(key)
  }
  async set(key: string, kv: ChunkKV): Promise<void> {
    const i = this.name(key)
    this.log.push(`set ${i}`)
    await new Promise((r) => setTimeout(r, this.writeMs))
    if (i === this.failWrite) throw new Error(`write ${i} failed`)
    this.inner.set(key, kv)
    this.log.push(`stored ${i}`)
  }
}

/** the store, its keys learnt from a first pass, and model.prefill logging each chunk's compute */
async function slowWorld(readMs: number, writeMs: number, failWrite = -1, failRead = -1) {
  const store = new SlowStore(readMs, writeMs, failWrite, failRead)
  const probe = new MemoryChunkStore()
  await loadChunks(model, { get: (k) => probe.get(k), set: (k, kv) => { store.keys.push(k); probe.set(k, kv) } }, chunks)
  const prefill = model.prefill.bind(model)
  const logged = Object.assign(Object.create(model) as LlamaModel, {
    prefill: (...args: Parameters<LlamaModel['prefill']>) => {
      store.log.push(`compute ${chunks.findIndex((c) => c.length === args[0].length)}`)
      return prefill(...args)
    },
  })
  return { store, logged, probe }
}

describe('loadChunks overlaps a tier with compute', () => {
  it('computes the next chunk while the last one is written, and the first while the later reads are on their way', async () => {
    const { store, logged, probe } = await slowWorld(40, 100)
    const out = await loadChunks(logged, store, chunks)
    const at = (e: string) => store.log.indexOf(e)
    expect(at('get 2')).toBeLessThan(at('compute 0'))
    expect(at('compute 0')).toBeLessThan(at('got 1'))
    expect(at('compute 1')).toBeLessThan(at('stored 0'))
    // settled only after every write, with the KV a plain store gets
    expect(['stored 0', 'stored 1', 'stored 2'].every((e) => at(e) >= 0)).toBe(true)
    out.forEach((x, i) => {
      expect(x.hit).toBe(false)
      expect(x.kv).toEqual(probe.get(store.keys[i]))
    })
    const again = await loadChunks(model, store, chunks)
    expect(again.map((x) => x.hit)).toEqual([true, true, true])
  })

  it('throws a failed write once the chunk computing meanwhile is done, and settles after the other writes', async () => {
    const { store, logged } = await slowWorld(100, 30, 0)
    await expect(loadChunks(logged, store, chunks)).rejects.toThrow('write 0 failed')
    expect(store.log.filter((e) => e.startsWith('compute'))).toEqual(['compute 0', 'compute 1'])
    expect(store.log.at(-1)).toBe('stored 1')
  })

  it('throws a failed read when its chunk comes, after the earlier chunks, with no unhandled rejection', async () => {
    const { store, logged } = await slowWorld(20, 10, -1, 2)
    await expect(loadChunks(logged, store, chunks)).rejects.toThrow('read 2 failed')
    expect(store.log.filter((e) => e.startsWith('compute'))).toEqual(['compute 0', 'compute 1'])
    expect(store.log).toContain('stored 1')
  })
})

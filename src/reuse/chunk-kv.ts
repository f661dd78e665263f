import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import { keyRotation } from './rerotate.js'
import { ropeInvFreq } from '../model/config.js'
import { blockHashes } from './block-hash.js'
import { ReuseError } from './errors.js'
import { nextTurn } from '../model/next-turn.js'

/**
 * One chunk's KV, computed with the chunk alone at positions 0..T-1 (CacheBlend's and Graph-KV's unit
 * of reuse): per layer, keys (post-RoPE) and values [T][kvHeads][headDim], as `PagedKVCache.append`
 * takes them. Plain arrays, so a tier can store and load them as bytes.
 */
export interface ChunkKV {
  readonly ids: readonly number[]
  readonly k: readonly Float32Array[]
  readonly v: readonly Float32Array[]
}

/** Where chunks' KV are kept between requests: memory by default; tiers implement the same. */
export interface ChunkStore {
  get(key: string): ChunkKV | undefined | Promise<ChunkKV | undefined>
  set(key: string, kv: ChunkKV): void | Promise<void>
  /** drops a chunk, returning whether it was there; optional: a store without it only grows */
  delete?(key: string): boolean | Promise<boolean>
}

/** A ChunkStore in memory (a Map by chunk key). */
export class MemoryChunkStore implements ChunkStore {
  private readonly map = new Map<string, ChunkKV>()
  get(key: string): ChunkKV | undefined {
    return this.map.get(key)
  }
  set(key: string, kv: ChunkKV): void {
    this.map.set(key, kv)
  }
  delete(key: string): boolean {
    return this.map.delete(key)
  }
  get size(): number {
    return this.map.size
  }
}

/** the store key of a chunk: SHA-256 chained from the salt over its tokens (block-hash.ts), one block */
export function chunkKey(ids: readonly number[], salt = ''): string {
  return blockHashes(ids, ids.length, `chunk\0${salt}`, 1)[0]
}

/** every layer's rows of a cache, [T][kvHeads][headDim] a layer */
export function readLayers(cache: PagedKVCache): { k: Float32Array[]; v: Float32Array[] } {
  const all = Array.from({ length: cache.options.layers }, (_, l) => cache.readLayer(l))
  return { k: all.map((x) => x.k), v: all.map((x) => x.v) }
}

/** The chunk's KV computed alone at positions 0..T-1. */
export function computeChunk(model: LlamaModel, ids: readonly number[]): ChunkKV {
  model.checkIds(ids, 'chunk')
  const cache = model.newCache('post-rope', 64, 'float32')
  try {
    model.prefill(ids, cache, 0)
    return { ids: ids.slice(), ...readLayers(cache) }
  } finally {
    cache.dispose()
  }
}

/**
 * Throws ReuseError unless a store's entry holds `ids` and KV of the model's shape (every layer's keys
 * and values, kvHeads x headDim floats a token). A store outlives the model (a folder, Redis, IndexedDB)
 * and its keys hash tokens only: another model's entry was placed row by row and failed inside the cache
 * (a CacheError on a layer it lacked, or a row size), after the other chunks' work.
 */
export function checkStoredChunk(where: string, key: string, found: ChunkKV, ids: readonly number[], model: LlamaModel): void {
  // a custom store's get may return what it was not given: a TypeError below, reading ids' length
  if (!Array.isArray((found as Partial<ChunkKV> | null)?.ids)) throw new ReuseError(`${where}: the entry for key ${key} is not a chunk (no token ids)`)
  if (found.ids.length !== ids.length || found.ids.some((t, i) => t !== ids[i])) throw new ReuseError(`${where}: the entry for key ${key} holds other tokens`)
  const { layers, kvHeads, headDim } = model.config
  const T = ids.length
  const row = kvHeads * headDim
  const fits = (a: readonly Float32Array[]) => Array.isArray(a) && a.length === layers && a.every((x) => x instanceof Float32Array && x.length === T * row)
  if (fits(found.k) && fits(found.v)) return
  const first = Array.isArray(found.k) ? found.k[0] : undefined
  const got = `${Array.isArray(found.k) ? found.k.length : 'no'} layers${first instanceof Float32Array ? ` of ${first.length / T} floats a token` : ''}`
  throw new ReuseError(`${where}: the entry for key ${key} holds KV of another shape (${got}) than this model's (${layers} layers of ${row} floats a token): a store shared by models needs a salt per model`)
}

/** a call's outcome as a value: a tier's read or write that fails while a chunk computes waits to be thrown, never an unhandled rejection */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown }

function settle<T>(run: () => T | Promise<T>): Promise<Settled<T>> {
  return Promise.resolve().then(run).then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }))
}

/**
 * Each chunk from the store, or computed and stored. The store is asked for every chunk at once (a tier
 * fetches them together); the missing ones are computed one after another, in order, while the later
 * chunks' reads are still on their way and each computed chunk's write goes on behind the next one's
 * compute (LMCache overlaps its tier transfers with compute the same way). `check` (an abort) is called
 * on a later turn of the event loop after each chunk. A chunk listed twice and missing is computed and
 * stored once; both places get that KV, neither a hit. The first failed read or write is thrown (a
 * write's after the chunk then computing); the call settles only once its writes have.
 */
export async function loadChunks(model: LlamaModel, store: ChunkStore, chunks: readonly (readonly number[])[], salt = '', check: () => void = () => {}): Promise<{ kv: ChunkKV; hit: boolean }[]> {
  const keys = chunks.map((ids) => chunkKey(ids, salt))
  const reads = keys.map((key) => settle(() => store.get(key)))
  const writes: Promise<void>[] = []
  let failedWrite: { error: unknown } | undefined
  const out: { kv: ChunkKV; hit: boolean }[] = []
  // computed in this call, by key: a repeated chunk was computed (and stored) again
  const made = new Map<string, ChunkKV>()
  try {
    for (let i = 0; i < chunks.length; i++) {
      const read = await reads[i]
      if (!read.ok) throw read.error
      check()
      const hit = read.value
      if (hit) {
        checkStoredChunk('chunk store', keys[i], hit, chunks[i], model)
        out.push({ kv: hit, hit: true })
        continue
      }
      const again = made.get(keys[i])
      if (again) {
        out.push({ kv: again, hit: false })
        continue
      }
      const kv = computeChunk(model, chunks[i])
      made.set(keys[i], kv)
      writes.push(settle(() => store.set(keys[i], kv)).then((w) => { if (!w.ok) failedWrite ??= { error: w.error } }))
      out.push({ kv, hit: false })
      await nextTurn()
      if (failedWrite) throw failedWrite.error
      check()
    }
  } finally {
    await Promise.all(writes)
  }
  if (failedWrite) throw failedWrite.error
  return out
}

/**
 * Appends a chunk's KV to every layer of `cache` at positions first..first+T-1: its keys, computed at
 * 0..T-1, are re-rotated there in place (exact to float32 rounding, rerotate.ts).
 */
export function placeChunk(model: LlamaModel, cache: PagedKVCache, kv: ChunkKV, first: number): void {
  placeRows(model, cache, kv, Int32Array.from(kv.ids, (_, i) => i), first)
}

/**
 * Appends n = source.length slots to every layer of `cache`, at positions first..first+n-1: slot j takes
 * row source[j] of the chunk's KV, its key re-rotated from position source[j] to first + j (KVShare's
 * aligned tokens moving with an edit); a slot with source -1 gets zeros, a placeholder its caller
 * recomputes before anything attends to it.
 */
export function placeRows(model: LlamaModel, cache: PagedKVCache, kv: ChunkKV, source: Int32Array, first: number): void {
  const n = source.length
  const T = kv.ids.length
  const slot = cache.length(0, 0)
  const old = Int32Array.from(source, (s, j) => (s >= 0 ? s : first + j))
  kv.k.forEach((k, l) => {
    const row = k.length / T
    const kr = new Float32Array(n * row)
    const vr = new Float32Array(n * row)
    source.forEach((s, j) => {
      if (s < 0) return
      kr.set(k.subarray(s * row, (s + 1) * row), j * row)
      vr.set(kv.v[l].subarray(s * row, (s + 1) * row), j * row)
    })
    cache.append(l, kr, vr, old)
  })
  const now = Int32Array.from({ length: n }, (_, j) => first + j)
  if (old.some((p, j) => p !== now[j])) cache.reposition(slot, now, keyRotation(model.backend, ropeInvFreq(model.config)))
}

import { openDB, type IDBPDatabase } from 'idb'
import type { ChunkKV, ChunkStore } from './chunk-kv.js'
import { chunkMeta, decodeChunk, encodeChunk, type ChunkMeta } from './chunk-codec.js'
import { ReuseError } from './errors.js'

/**
 * Chunks' KV in the browser's IndexedDB (through `idb`, a small promise wrapper): one record per chunk
 * in the object store 'chunks' of database `name`, holding its metadata and chunk-codec's bytes, so it
 * outlives the page and serves the next visit or another tab of the origin. Browser-safe (no `node:`).
 */
export class IndexedDbChunkStore implements ChunkStore {
  private constructor(private readonly db: IDBPDatabase) {}

  /** opens (or creates) the database; throws ReuseError where there is no IndexedDB */
  static async open(name = 'kvkit-chunks'): Promise<IndexedDbChunkStore> {
    if (typeof indexedDB === 'undefined') throw new ReuseError('IndexedDbChunkStore: this runtime has no indexedDB (a browser or worker is needed)')
    const db = await openDB(name, 1, {
      upgrade(d) {
        d.createObjectStore('chunks')
      },
    })
    return new IndexedDbChunkStore(db)
  }

  async get(key: string): Promise<ChunkKV | undefined> {
    const rec = (await this.db.get('chunks', key)) as { meta: ChunkMeta; bytes: ArrayBuffer } | undefined
    return rec ? decodeChunk(new Uint8Array(rec.bytes)) : undefined
  }

  async set(key: string, kv: ChunkKV): Promise<void> {
    const bytes = encodeChunk(kv)
    await this.db.put('chunks', { meta: chunkMeta(kv), bytes: bytes.buffer }, key)
  }

  /** drops a chunk; false when there was none */
  async delete(key: string): Promise<boolean> {
    const tx = this.db.transaction('chunks', 'readwrite')
    const there = (await tx.store.getKey(key)) !== undefined
    if (there) await tx.store.delete(key)
    await tx.done
    return there
  }

  /** the metadata of a stored chunk, without reading its bytes into a ChunkKV */
  async meta(key: string): Promise<ChunkMeta | undefined> {
    return ((await this.db.get('chunks', key)) as { meta: ChunkMeta } | undefined)?.meta
  }

  close(): void {
    this.db.close()
  }
}

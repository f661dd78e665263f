import type { ChunkKV, ChunkStore } from './chunk-kv.js'
import { decodeChunk, encodeChunk } from './chunk-codec.js'
import { ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

export interface OpfsChunkStoreOptions {
  /** the folder under the origin's private file system root that holds the chunks (default 'kvkit-chunks') */
  directory?: string
  /**
   * bytes the chunk files may take; a write beyond it first drops the least recently used chunks (this
   * store's own gets and sets, then the files' write times). Default: no bound but the origin's quota
   */
  maxBytes?: number
}

const isNotFound = (e: unknown) => (e as { name?: string })?.name === 'NotFoundError'

/**
 * Chunks' KV on the Origin Private File System (`navigator.storage.getDirectory()`), the browser's
 * file tier beside IndexedDbChunkStore: one file a chunk, `<key>.kvc` in `directory`, in chunk-codec's
 * format. A write goes through `createWritable()`, whose data replaces the file only when the stream
 * closes, so a reader never sees half a chunk. It outlives the page and serves the origin's other tabs
 * (the byte budget is kept per store: tabs do not coordinate it). Browser-safe (no `node:`); needs
 * `FileSystemFileHandle.createWritable` (Chromium and Firefox have it; tested in headless Chromium).
 */
export class OpfsChunkStore implements ChunkStore {
  /** bytes per chunk file, least recently used first */
  private readonly sizes: Map<string, number>

  private constructor(
    private readonly dir: FileSystemDirectoryHandle,
    readonly maxBytes: number,
    sizes: Map<string, number>,
  ) {
    this.sizes = sizes
  }

  /**
   * Opens (or creates) the folder and reads what it holds.
   * @throws ReuseError where there is no OPFS, or for a bad directory name or maxBytes
   */
  static async open(options: OpfsChunkStoreOptions = {}): Promise<OpfsChunkStore> {
    const name = options.directory ?? 'kvkit-chunks'
    const maxBytes = options.maxBytes ?? Infinity
    if (typeof name !== 'string' || name === '' || /[/\\]/.test(name) || name === '.' || name === '..') throw new ReuseError(`OpfsChunkStore: directory must be a folder name (no slashes), got ${JSON.stringify(name)}`)
    if (!(maxBytes === Infinity || (Number.isInteger(maxBytes) && maxBytes > 0))) throw new ReuseError(`OpfsChunkStore: maxBytes must be a whole number > 0, got ${shownValue(maxBytes)}`)
    const storage = typeof navigator === 'undefined' ? undefined : navigator.storage
    if (typeof storage?.getDirectory !== 'function') throw new ReuseError('OpfsChunkStore: this runtime has no Origin Private File System (navigator.storage.getDirectory)')
    const dir = await (await storage.getDirectory()).getDirectoryHandle(name, { create: true })
    const found: { key: string; bytes: number; at: number }[] = []
    for await (const [file, handle] of dir as unknown as AsyncIterable<[string, FileSystemHandle]>) {
      const key = /^([0-9a-f]{64})\.kvc$/.exec(file)?.[1]
      if (!key || handle.kind !== 'file') continue
      const f = await (handle as FileSystemFileHandle).getFile()
      found.push({ key, bytes: f.size, at: f.lastModified })
    }
    found.sort((a, b) => a.at - b.at)
    return new OpfsChunkStore(dir, maxBytes, new Map(found.map((x) => [x.key, x.bytes])))
  }

  /** bytes the chunk files take, as this store knows them */
  get bytes(): number {
    let n = 0
    for (const b of this.sizes.values()) n += b
    return n
  }

  /** the stored chunks' keys, least recently used first */
  keys(): string[] {
    return [...this.sizes.keys()]
  }

  async get(key: string): Promise<ChunkKV | undefined> {
    const name = fileName(key)
    let file: File
    try {
      file = await (await this.dir.getFileHandle(name)).getFile()
    } catch (e) {
      if (!isNotFound(e)) throw e
      this.sizes.delete(key)
      return undefined
    }
    const kv = decodeChunk(new Uint8Array(await file.arrayBuffer()))
    this.touch(key, file.size)
    return kv
  }

  /** @throws ReuseError when the chunk alone is larger than maxBytes (nothing is dropped then) */
  async set(key: string, kv: ChunkKV): Promise<void> {
    const name = fileName(key)
    const bytes = encodeChunk(kv)
    if (bytes.length > this.maxBytes) throw new ReuseError(`OpfsChunkStore: a chunk of ${bytes.length} bytes does not fit in maxBytes ${this.maxBytes}`)
    const w = await (await this.dir.getFileHandle(name, { create: true })).createWritable()
    try {
      await w.write(bytes as Uint8Array<ArrayBuffer>)
      await w.close()
    } catch (e) {
      await w.abort().catch(() => {})
      throw e
    }
    // dropped only once the new chunk is in place: a failed write loses nothing
    this.touch(key, bytes.length)
    let over = this.bytes - this.maxBytes
    for (const old of this.keys()) {
      if (over <= 0) break
      if (old === key) continue
      over -= this.sizes.get(old)!
      await this.delete(old)
    }
  }

  /** drops a chunk's file; false when there was none */
  async delete(key: string): Promise<boolean> {
    const name = fileName(key)
    this.sizes.delete(key)
    try {
      await this.dir.removeEntry(name)
      return true
    } catch (e) {
      if (isNotFound(e)) return false
      throw e
    }
  }

  private touch(key: string, bytes: number): void {
    this.sizes.delete(key)
    this.sizes.set(key, bytes)
  }
}

/** a chunk key's file name; the key must be a chunk key (64 hex digits), which also keeps it a plain name */
function fileName(key: string): string {
  if (typeof key !== 'string' || !/^[0-9a-f]{64}$/.test(key)) throw new ReuseError(`OpfsChunkStore: key must be 64 hex digits (a chunk key), got ${JSON.stringify(key)}`)
  return `${key}.kvc`
}

import { accessSync, constants, statSync } from 'node:fs'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChunkKV, ChunkStore } from '../reuse/chunk-kv.js'
import { decodeChunk, encodeChunk } from '../reuse/chunk-codec.js'
import { ReuseError } from '../reuse/errors.js'

/**
 * Chunks' KV on the file system (Node, Bun, Deno): one file a chunk, `<key>.kvc` in `dir`, in
 * chunk-codec's format. A write goes to a temporary name and is renamed into place, so a reader never
 * sees half a chunk and a crash leaves no torn file.
 */
export class FileChunkStore implements ChunkStore {
  private ready: Promise<unknown> | null = null
  readonly readOnly: boolean

  /**
   * `dir` is made at the first write where it does not exist yet. `{ readOnly: true }` serves the chunks
   * a folder already holds (precomputed, shared, on a read-only mount): `set` then stores nothing, so
   * a miss is computed for the request alone.
   * @throws ReuseError for a dir that is not a path string, an unknown option, a dir that exists and is
   * not a folder, a writable store's folder that is not writable, or a read-only store's folder that does
   * not exist (each found here, not at the first chunk written, after that chunk's prefill)
   */
  constructor(readonly dir: string, options: { readOnly?: boolean } = {}) {
    if (typeof dir !== 'string' || dir === '') throw new ReuseError(`FileChunkStore: dir must be a folder path, got ${dir === '' ? 'an empty string' : dir === null ? 'null' : typeof dir}`)
    if (options === null || typeof options !== 'object') throw new ReuseError(`FileChunkStore: options must be an object, got ${options === null ? 'null' : typeof options}`)
    for (const k of Object.keys(options)) if (k !== 'readOnly') throw new ReuseError(`FileChunkStore: unknown option ${JSON.stringify(k)} (known: readOnly)`)
    if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') throw new ReuseError(`FileChunkStore: readOnly must be a boolean, got ${typeof options.readOnly}`)
    this.readOnly = options.readOnly === true
    let isDir: boolean
    try {
      isDir = statSync(dir).isDirectory()
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !this.readOnly) return
      throw new ReuseError(`FileChunkStore: cannot read folder ${JSON.stringify(dir)}: ${(e as Error).message}`)
    }
    if (!isDir) throw new ReuseError(`FileChunkStore: ${JSON.stringify(dir)} exists and is not a folder`)
    if (this.readOnly) return
    try {
      accessSync(dir, constants.W_OK)
    } catch (e) {
      throw new ReuseError(`FileChunkStore: folder ${JSON.stringify(dir)} is not writable (a folder of precomputed chunks: { readOnly: true }): ${(e as Error).message}`)
    }
  }

  private path(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new ReuseError(`FileChunkStore: key must be 64 hex digits (a chunk key), got ${JSON.stringify(key)}`)
    return join(this.dir, `${key}.kvc`)
  }

  async get(key: string): Promise<ChunkKV | undefined> {
    const path = this.path(key)
    let bytes: Uint8Array
    try {
      bytes = await readFile(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
    try {
      return decodeChunk(bytes)
    } catch (e) {
      // the codec's message names what is wrong, not which of the folder's files
      throw e instanceof ReuseError ? new ReuseError(`FileChunkStore: ${path}: ${e.message}`) : e
    }
  }

  async set(key: string, kv: ChunkKV): Promise<void> {
    const path = this.path(key)
    if (this.readOnly) return
    this.ready ??= mkdir(this.dir, { recursive: true })
    await this.ready
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, encodeChunk(kv))
    await rename(tmp, path)
  }
}

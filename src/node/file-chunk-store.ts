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

  /**
   * `dir` is made at the first write where it does not exist yet.
   * @throws ReuseError for a dir that is not a path string, or that exists and is not a writable folder:
   * found at the first chunk written, after that chunk's prefill, as node's ENOTDIR or EACCES
   */
  constructor(readonly dir: string) {
    if (typeof dir !== 'string' || dir === '') throw new ReuseError(`FileChunkStore: dir must be a folder path, got ${dir === '' ? 'an empty string' : dir === null ? 'null' : typeof dir}`)
    let isDir: boolean
    try {
      isDir = statSync(dir).isDirectory()
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
      throw new ReuseError(`FileChunkStore: cannot read folder ${JSON.stringify(dir)}: ${(e as Error).message}`)
    }
    if (!isDir) throw new ReuseError(`FileChunkStore: ${JSON.stringify(dir)} exists and is not a folder`)
    try {
      accessSync(dir, constants.W_OK)
    } catch (e) {
      throw new ReuseError(`FileChunkStore: folder ${JSON.stringify(dir)} is not writable: ${(e as Error).message}`)
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
    this.ready ??= mkdir(this.dir, { recursive: true })
    await this.ready
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, encodeChunk(kv))
    await rename(tmp, path)
  }
}

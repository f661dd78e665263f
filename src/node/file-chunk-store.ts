import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChunkKV, ChunkStore } from '../reuse/chunk-kv.js'
import { decodeChunk, encodeChunk } from '../reuse/chunk-codec.js'

/**
 * Chunks' KV on the file system (Node, Bun, Deno): one file a chunk, `<key>.kvc` in `dir`, in
 * chunk-codec's format. A write goes to a temporary name and is renamed into place, so a reader never
 * sees half a chunk and a crash leaves no torn file.
 */
export class FileChunkStore implements ChunkStore {
  private ready: Promise<unknown> | null = null

  constructor(readonly dir: string) {}

  private path(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`FileChunkStore: key must be 64 hex digits (a chunk key), got ${JSON.stringify(key)}`)
    return join(this.dir, `${key}.kvc`)
  }

  async get(key: string): Promise<ChunkKV | undefined> {
    try {
      return decodeChunk(await readFile(this.path(key)))
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
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

import { createClient, RESP_TYPES } from 'redis'
import type { ChunkKV, ChunkStore } from '../reuse/chunk-kv.js'
import { chunkMeta, decodeChunk, encodeChunk } from '../reuse/chunk-codec.js'

export interface RedisChunkStoreOptions {
  /** key prefix (default 'kvkit:chunk:') */
  prefix?: string
  /** seconds a chunk lives (default: no expiry) */
  ttlSeconds?: number
}

/**
 * Chunks' KV in Redis or Valkey, the remote tier shared by several machines, through node-redis: the
 * value (chunk-codec's bytes) at `<prefix><key>` and its metadata as a hash at `<prefix><key>:meta`
 * (tokens, layers, rowFloats, dtype, bytes), written in one MULTI so a reader never finds one
 * without the other. Reads are plain GETs of bytes, which CacheBlend issues for all chunks at once.
 */
export class RedisChunkStore implements ChunkStore {
  private constructor(
    private readonly client: ReturnType<typeof binaryClient>,
    private readonly prefix: string,
    private readonly ttl: number | undefined,
  ) {}

  /** connects to `url` (redis://host:port) */
  static async connect(url: string, options: RedisChunkStoreOptions = {}): Promise<RedisChunkStore> {
    const client = binaryClient(url)
    client.on('error', () => {}) // a failed command rejects its own promise; the client retries the socket
    await client.connect()
    return new RedisChunkStore(client, options.prefix ?? 'kvkit:chunk:', options.ttlSeconds)
  }

  async get(key: string): Promise<ChunkKV | undefined> {
    const bytes = (await this.client.get(this.prefix + key)) as Buffer | null
    return bytes ? decodeChunk(bytes) : undefined
  }

  async set(key: string, kv: ChunkKV): Promise<void> {
    const bytes = encodeChunk(kv)
    const fields = Object.fromEntries(Object.entries({ ...chunkMeta(kv), bytes: bytes.length }).map(([k, x]) => [k, String(x)]))
    const m = this.client.multi().set(this.prefix + key, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).hSet(`${this.prefix}${key}:meta`, fields)
    if (this.ttl) m.expire(this.prefix + key, this.ttl).expire(`${this.prefix}${key}:meta`, this.ttl)
    await m.exec()
  }

  /** the metadata hash of a chunk, or null */
  async meta(key: string): Promise<Record<string, string> | null> {
    const h = (await this.client.hGetAll(`${this.prefix}${key}:meta`)) as unknown as Record<string, Buffer>
    const keys = Object.keys(h)
    return keys.length ? Object.fromEntries(keys.map((k) => [k, h[k].toString()])) : null
  }

  async close(): Promise<void> {
    await this.client.quit()
  }
}

function binaryClient(url: string) {
  return createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
}

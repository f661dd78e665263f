import { createClient, RESP_TYPES } from 'redis'
import type { ChunkKV, ChunkStore } from '../reuse/chunk-kv.js'
import { chunkMeta, decodeChunk, encodeChunk } from '../reuse/chunk-codec.js'
import { checkOptionNames, ReuseError } from '../reuse/errors.js'

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

  /**
   * connects to `url` (redis://host:port, rediss:// for TLS)
   * @throws ReuseError for a url that is not a redis:// or rediss:// URL string, an unknown option, a prefix
   * that is not a string, a ttlSeconds that is not a positive integer (each before connecting), or a
   * server that cannot be reached (the first connection's error, naming the url)
   */
  static async connect(url: string, options: RedisChunkStoreOptions = {}): Promise<RedisChunkStore> {
    checkConnectArgs(url, options)
    let connected = false
    // node-redis retries a failed first connection forever, so connect() to a server that is not there never
    // settled; the first connection's error now rejects it, and a connection lost later is retried with backoff
    const client = binaryClient(url, (retries, cause) => (connected ? Math.min(50 * 2 ** retries, 2000) : cause))
    client.on('error', () => {}) // a failed command rejects its own promise; the client retries the socket
    try {
      await client.connect()
    } catch (e) {
      throw new ReuseError(`RedisChunkStore: cannot connect to ${JSON.stringify(url)}: ${(e as Error).message}`)
    }
    connected = true
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

function binaryClient(url: string, reconnectStrategy: (retries: number, cause: Error) => number | Error) {
  return createClient({ url, socket: { reconnectStrategy } }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer })
}

const OPTIONS: Readonly<Record<string, true>> = { prefix: true, ttlSeconds: true }

/**
 * Bad arguments to connect as a ReuseError naming them, before any socket opens: a url of another type was
 * node-redis's TypeError ("url.startsWith is not a function"), and a ttlSeconds of -1 or 0.5 was taken and
 * then expired every chunk at once (Redis deletes a key given a negative TTL) or failed each write.
 */
function checkConnectArgs(url: unknown, options: unknown): void {
  if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
    throw new ReuseError(`RedisChunkStore.connect: url must be a redis:// or rediss:// URL string, got ${typeof url === 'string' ? JSON.stringify(url) : url === null ? 'null' : typeof url}`)
  }
  checkOptionNames('RedisChunkStore.connect', options, OPTIONS)
  const { prefix, ttlSeconds } = options as RedisChunkStoreOptions
  if (prefix !== undefined && typeof prefix !== 'string') throw new ReuseError(`RedisChunkStore.connect: prefix must be a string, got ${prefix === null ? 'null' : typeof prefix}`)
  if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && ttlSeconds > 0)) {
    throw new ReuseError(`RedisChunkStore.connect: ttlSeconds must be a positive integer (seconds), got ${typeof ttlSeconds === 'number' ? ttlSeconds : JSON.stringify(ttlSeconds) ?? typeof ttlSeconds}`)
  }
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { chunkKey, computeChunk, MemoryChunkStore, type ChunkKV, type ChunkStore } from '../src/reuse/chunk-kv.js'
import { decodeChunk, encodeChunk } from '../src/reuse/chunk-codec.js'
import { ReuseError } from '../src/reuse/errors.js'
import { FileChunkStore } from '../src/node/file-chunk-store.js'
import { RedisChunkStore } from '../src/node/redis-chunk-store.js'

// Tiers below memory for chunks' KV: the codec bit-exact, the file system and a Redis server started
// here (Debian's redis-server on a free port), each serving CacheBlend as the in-memory store does.
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

/** a chunk with awkward floats: signed zeros, subnormals, NaN payloads, infinities */
function oddChunk(): ChunkKV {
  const odd = Float32Array.of(-0, 0, 1e-45, -1.17e-38, Infinity, -Infinity, Number.NaN, 3.4e38)
  const bits = new Uint32Array(odd.buffer)
  bits[6] = 0x7fc01234 // a NaN with a payload
  const mk = (seed: number) => Float32Array.from({ length: 3 * 8 }, (_, i) => (i < 8 ? odd[i] : Math.fround(Math.sin(seed + i) * 7)))
  return { ids: [5, 6, 7], k: [mk(1), mk(2)], v: [mk(3), mk(4)] }
}
const bitsOf = (kv: ChunkKV) => [...kv.k, ...kv.v].map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length)))

/** the logits after a blended context, for comparing stores */
async function blendedLogits(store: ChunkStore, chunks: number[][], q: number[]): Promise<{ out: Float32Array; hits: number }> {
  const ctx = await new CacheBlend(model, { store, ratio: 0.15 }).prepare(chunks)
  const h = ctx.open([...chunks.flat(), ...q], model)
  const out = new Float32Array(q.length * model.config.vocab)
  model.prefill(q, h.cache, h.cachedTokens, undefined, out)
  h.close([], true)
  return { out, hits: ctx.report.chunkHits }
}

const chunks = [[0, ...words(19, 1)], words(25, 2), words(15, 3)]
const question = words(5, 4)

describe('chunk codec', () => {
  it('round-trips a chunk bit for bit, odd floats included', () => {
    const kv = oddChunk()
    const back = decodeChunk(encodeChunk(kv))
    expect(back.ids).toEqual(kv.ids)
    expect(bitsOf(back)).toEqual(bitsOf(kv))
  })

  it('reads a Node Buffer cut from a shared pool (as fs and sockets hand them over)', () => {
    const bytes = encodeChunk(oddChunk())
    const pooled = Buffer.concat([Buffer.from('junk'), bytes]).subarray(4)
    expect(bitsOf(decodeChunk(pooled))).toEqual(bitsOf(oddChunk()))
  })

  it('reads bytes at any offset of a larger buffer (as a socket hands them over)', () => {
    const bytes = encodeChunk(oddChunk())
    const big = new Uint8Array(bytes.length + 3)
    big.set(bytes, 3)
    expect(bitsOf(decodeChunk(big.subarray(3)))).toEqual(bitsOf(oddChunk()))
  })

  it.each([
    ['too short', new Uint8Array(5)],
    ['bad magic', new Uint8Array(64)],
    ['truncated', encodeChunk(oddChunk()).subarray(0, 100)],
  ])('refuses %s bytes with a ReuseError', (_n, bytes) => {
    expect(() => decodeChunk(bytes)).toThrow(ReuseError)
  })
})

describe('file-system tier', () => {
  it('stores chunks as files, and a new store on the same folder (another process) serves CacheBlend as memory does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-chunks-'))
    const first = await blendedLogits(new FileChunkStore(dir), chunks, question)
    expect(first.hits).toBe(0)
    expect(readdirSync(dir).sort()).toEqual(chunks.map((c) => `${chunkKey(c)}.kvc`).sort())
    const again = await blendedLogits(new FileChunkStore(dir), chunks, question)
    expect(again.hits).toBe(3)
    expect(again.out).toEqual((await blendedLogits(new MemoryChunkStore(), chunks, question)).out)
  })

  it('answers undefined for a chunk it does not hold, and refuses a key that is not a chunk key', async () => {
    const s = new FileChunkStore(mkdtempSync(join(tmpdir(), 'kvkit-chunks-')))
    expect(await s.get(chunkKey([1, 2, 3]))).toBeUndefined()
    await expect(s.get('../../etc/passwd')).rejects.toThrow(/64 hex digits/)
  })
})

const redisBinary = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim()
if (!redisBinary) console.warn('reuse-tiers: redis-server is not installed (apt-get install redis-server): the Redis tier tests are skipped')

describe.skipIf(!redisBinary)('Redis tier (a redis-server started by the test)', () => {
  let server: ChildProcess
  let url = ''
  beforeAll(async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port
        s.close(() => resolve(p))
      })
    })
    server = spawn(redisBinary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    url = `redis://127.0.0.1:${port}`
    for (let i = 0; i < 100; i++) {
      try {
        const probe = await RedisChunkStore.connect(url)
        await probe.close()
        return
      } catch {
        await new Promise((r) => setTimeout(r, 50))
      }
    }
    throw new Error(`redis-server did not start on port ${port}`)
  })
  afterAll(() => {
    server?.kill()
  })

  it('round-trips a chunk bit for bit, with its metadata hash beside it', async () => {
    const store = await RedisChunkStore.connect(url)
    const kv = oddChunk()
    await store.set('k1', kv)
    expect(bitsOf((await store.get('k1'))!)).toEqual(bitsOf(kv))
    expect(await store.meta('k1')).toEqual({ tokens: '3', layers: '2', rowFloats: '8', dtype: 'float32', bytes: String(encodeChunk(kv).length) })
    expect(await store.get('absent')).toBeUndefined()
    await store.close()
  })

  it('serves CacheBlend to a second client: every chunk found, the same logits as the in-memory store', async () => {
    const a = await RedisChunkStore.connect(url, { prefix: 'blend:' })
    expect((await blendedLogits(a, chunks, question)).hits).toBe(0)
    await a.close()
    const b = await RedisChunkStore.connect(url, { prefix: 'blend:' })
    const again = await blendedLogits(b, chunks, question)
    await b.close()
    expect(again.hits).toBe(3)
    expect(again.out).toEqual((await blendedLogits(new MemoryChunkStore(), chunks, question)).out)
    // a real model chunk too, bit for bit
    const c = await RedisChunkStore.connect(url)
    const kv = computeChunk(model, chunks[1])
    await c.set(chunkKey(chunks[1]), kv)
    expect(bitsOf((await c.get(chunkKey(chunks[1])))!)).toEqual(bitsOf(kv))
    await c.close()
  })
})

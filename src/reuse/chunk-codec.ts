import type { ChunkKV } from './chunk-kv.js'
import { ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

/** What a stored chunk says about itself (a tier keeps it as the value's header, Redis also apart). */
export interface ChunkMeta {
  tokens: number
  layers: number
  /** floats of one token's row in a layer: kvHeads x headDim */
  rowFloats: number
  dtype: 'float32'
}

/** the metadata of a chunk */
export function chunkMeta(kv: ChunkKV): ChunkMeta {
  const T = kv.ids.length
  return { tokens: T, layers: kv.k.length, rowFloats: kv.k.length ? kv.k[0].length / T : 0, dtype: 'float32' }
}

const MAGIC = 0x434b564b // 'KVKC' little-endian
const VERSION = 1

/**
 * A chunk's KV as bytes for a tier: 'KVKC', version, header length (uint32 LE), the JSON header (meta
 * and token ids), padding to 4 bytes, then per layer the keys and values as float32 little-endian.
 * Bit-exact both ways (the floats are copied, not printed).
 */
export function encodeChunk(kv: ChunkKV): Uint8Array {
  const meta = { ...chunkMeta(kv), ids: kv.ids }
  const { tokens: T, layers, rowFloats: row } = meta
  const head = new TextEncoder().encode(JSON.stringify(meta))
  const start = Math.ceil((12 + head.length) / 4) * 4
  const out = new Uint8Array(start + layers * 2 * T * row * 4)
  const view = new DataView(out.buffer)
  view.setUint32(0, MAGIC, true)
  view.setUint32(4, VERSION, true)
  view.setUint32(8, head.length, true)
  out.set(head, 12)
  const floats = new Float32Array(out.buffer, start)
  kv.k.forEach((k, l) => {
    floats.set(k, 2 * l * T * row)
    floats.set(kv.v[l], (2 * l + 1) * T * row)
  })
  return out
}

/** The chunk back from encodeChunk's bytes; a ReuseError names what is wrong with bytes that are not one. */
export function decodeChunk(bytes: Uint8Array): ChunkKV {
  if (bytes.length < 12) throw new ReuseError(`chunk bytes: ${bytes.length} bytes are too few for a header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(0, true) !== MAGIC) throw new ReuseError('chunk bytes: not a kvkit chunk (bad magic)')
  if (view.getUint32(4, true) !== VERSION) throw new ReuseError(`chunk bytes: version ${view.getUint32(4, true)}, this build reads ${VERSION}`)
  const hl = view.getUint32(8, true)
  if (12 + hl > bytes.length) throw new ReuseError('chunk bytes: the header runs past the end')
  const meta = readHeader(bytes.subarray(12, 12 + hl))
  const start = Math.ceil((12 + hl) / 4) * 4
  const n = meta.tokens * meta.rowFloats
  if (bytes.length !== start + meta.layers * 2 * n * 4) throw new ReuseError(`chunk bytes: ${bytes.length} bytes, the header promises ${start + meta.layers * 2 * n * 4}`)
  // copy into an aligned buffer of its own: a tier's bytes may start anywhere, and a Node Buffer's
  // slice() is a view into a shared pool, not a copy
  const own = new Uint8Array(bytes.length - start)
  own.set(bytes.subarray(start))
  const floats = new Float32Array(own.buffer)
  const k: Float32Array[] = []
  const v: Float32Array[] = []
  for (let l = 0; l < meta.layers; l++) {
    k.push(floats.slice(2 * l * n, (2 * l + 1) * n))
    v.push(floats.slice((2 * l + 1) * n, (2 * l + 2) * n))
  }
  return { ids: meta.ids, k, v }
}

/**
 * The JSON header's counts and token ids, checked: a damaged header was JSON.parse's SyntaxError, and
 * one without ids decoded into a chunk whose ids were undefined (a TypeError at the first use)
 */
function readHeader(bytes: Uint8Array): { tokens: number; layers: number; rowFloats: number; ids: number[] } {
  let meta: unknown
  try {
    meta = JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new ReuseError('chunk bytes: the header is not JSON')
  }
  if (typeof meta !== 'object' || meta === null) throw new ReuseError('chunk bytes: the header is not an object')
  const m = meta as Record<string, unknown>
  for (const field of ['tokens', 'layers', 'rowFloats'])
    if (!(Number.isInteger(m[field]) && (m[field] as number) >= 0)) throw new ReuseError(`chunk bytes: the header's ${field} must be a non-negative integer, got ${shownValue(m[field])}`)
  const ids = m.ids
  if (!(Array.isArray(ids) && ids.length === m.tokens && ids.every((t) => Number.isInteger(t) && t >= 0)))
    throw new ReuseError(`chunk bytes: the header's ids must be ${m.tokens} token ids`)
  return { tokens: m.tokens as number, layers: m.layers as number, rowFloats: m.rowFloats as number, ids }
}

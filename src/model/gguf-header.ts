import { ModelLoadError } from './errors.js'
import { EXPECTED_MODEL, fileStartKind } from './file-kind.js'

/**
 * A GGUF header parser (spec: ggml/docs/gguf.md, versions 2 and 3, little-endian) for untrusted files.
 * Written here rather than taken from @huggingface/gguf: that package's `exports` resolve, in every
 * bundler, to a build that imports `node:fs/promises`, which kvkit's browser-safe root entry cannot
 * carry; it is kept as the independent reference the tests parse every file with.
 *
 * Every count and length is checked against the bytes that remain before it is trusted, so a lying
 * header ends in a ModelLoadError naming what is wrong, never in a huge allocation or a long loop.
 */

/** GGUF metadata value types (gguf_type) */
const T = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const
const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }
const MAX_ARRAY_DEPTH = 2
const MAX_DIMS = 4

export interface GgufTensorInfo {
  name: string
  /** GGUF's ne[]: innermost dimension first */
  ne: number[]
  type: number
  /** offset from the start of the tensor data */
  offset: number
}

export interface GgufHeader {
  version: number
  metadata: Record<string, unknown>
  tensorInfos: GgufTensorInfo[]
  /** absolute offset of the tensor data (the header's end, padded to the alignment) */
  dataStart: number
  alignment: number
}

/** thrown inside the parser when the bytes read so far end before the header does */
export class NeedMoreBytes extends Error {}

/** Parses a header from its first `bytes.length` bytes (of a file of `fileSize`); NeedMoreBytes if they end too soon. */
export function parseGgufHeader(bytes: Uint8Array, fileSize: number, where: string): GgufHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  let pos = 0
  const fail = (msg: string): never => {
    throw new ModelLoadError(`${where}: ${msg}`)
  }
  const need = (n: number) => {
    if (pos + n > fileSize) fail(`the header runs past the end of the ${fileSize}-byte file (at byte ${pos}, ${n} more needed)`)
    if (pos + n > bytes.length) throw new NeedMoreBytes()
  }
  const u32 = () => (need(4), (pos += 4), view.getUint32(pos - 4, true))
  const u64 = (what: string): number => {
    need(8)
    const v = view.getBigUint64(pos, true)
    pos += 8
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} ${v} is beyond any file`)
    return Number(v)
  }
  const string = (what: string): string => {
    const n = u64(`${what} length`)
    if (pos + n > fileSize) fail(`${what} of ${n} bytes runs past the end of the file`)
    need(n)
    try {
      return utf8.decode(bytes.subarray(pos, (pos += n)))
    } catch {
      return fail(`${what} is not valid UTF-8`)
    }
  }
  const value = (type: number, what: string, depth: number): unknown => {
    if (type in SCALAR_BYTES) {
      need(SCALAR_BYTES[type])
      const at = pos
      pos += SCALAR_BYTES[type]
      switch (type) {
        case T.U8: return view.getUint8(at)
        case T.I8: return view.getInt8(at)
        case T.U16: return view.getUint16(at, true)
        case T.I16: return view.getInt16(at, true)
        case T.U32: return view.getUint32(at, true)
        case T.I32: return view.getInt32(at, true)
        case T.F32: return view.getFloat32(at, true)
        case T.BOOL: return view.getUint8(at) !== 0
        case T.F64: return view.getFloat64(at, true)
        default: {
          const v = type === T.U64 ? view.getBigUint64(at, true) : view.getBigInt64(at, true)
          return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v
        }
      }
    }
    if (type === T.STRING) return string(what)
    if (type !== T.ARRAY) return fail(`${what} has unknown value type ${type}`)
    if (depth >= MAX_ARRAY_DEPTH) fail(`${what} nests arrays deeper than ${MAX_ARRAY_DEPTH}`)
    const elemType = u32()
    const n = u64(`${what} array length`)
    // every element takes at least one byte (a string at least 8): a count the file cannot hold is a lie
    const minBytes = elemType === T.STRING || elemType === T.ARRAY ? 8 : SCALAR_BYTES[elemType] ?? 1
    if (pos + n * minBytes > fileSize) fail(`${what} declares ${n} elements, more than the file holds`)
    const out: unknown[] = new Array(n)
    for (let i = 0; i < n; i++) out[i] = value(elemType, `${what}[${i}]`, depth + 1)
    return out
  }

  need(8)
  // bytes, not text: a corrupt magic need not be UTF-8
  if (view.getUint32(0, false) !== 0x47475546) fail(`not a GGUF file: it is ${fileStartKind(bytes.subarray(0, 16))}. ${EXPECTED_MODEL}`)
  pos = 4
  const version = u32()
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (2 or 3${version === 1 ? '; version 1 files predate 64-bit counts' : version > 0xffff ? '; a big-endian file?' : ''})`)
  const tensorCount = u64('tensor count')
  const kvCount = u64('metadata count')
  // a metadata pair takes at least 13 bytes, a tensor info at least 28: counts the file cannot hold are lies
  if (kvCount * 13 + tensorCount * 28 > fileSize) fail(`${kvCount} metadata pairs and ${tensorCount} tensors cannot fit in ${fileSize} bytes`)
  const metadata: Record<string, unknown> = {}
  for (let i = 0; i < kvCount; i++) {
    const key = string(`metadata key ${i}`)
    if (Object.hasOwn(metadata, key)) fail(`metadata key ${JSON.stringify(key)} appears twice`)
    metadata[key] = value(u32(), `metadata ${JSON.stringify(key)}`, 0)
  }
  const tensorInfos: GgufTensorInfo[] = []
  for (let i = 0; i < tensorCount; i++) {
    const name = string(`tensor name ${i}`)
    const dims = u32()
    if (dims < 1 || dims > MAX_DIMS) fail(`tensor ${JSON.stringify(name)} has ${dims} dimensions (1 to ${MAX_DIMS})`)
    const ne: number[] = []
    for (let d = 0; d < dims; d++) ne.push(u64(`tensor ${JSON.stringify(name)} dimension ${d}`))
    tensorInfos.push({ name, ne, type: u32(), offset: u64(`tensor ${JSON.stringify(name)} offset`) })
  }
  const a = metadata['general.alignment'] ?? 32
  if (typeof a !== 'number' || !Number.isInteger(a) || a < 1 || a > 1 << 20 || (a & (a - 1)) !== 0) fail(`general.alignment ${JSON.stringify(String(a))} is not a power of two`)
  const alignment = a as number
  const dataStart = Math.ceil(pos / alignment) * alignment
  for (const t of tensorInfos) if (t.offset % alignment) fail(`tensor ${JSON.stringify(t.name)} offset ${t.offset} is not a multiple of the alignment ${alignment}`)
  return { version, metadata, tensorInfos, dataStart, alignment }
}

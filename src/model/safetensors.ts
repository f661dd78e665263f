import type { Heap } from '../backend/heap.js'
import { ModelLoadError } from './errors.js'
import type { ModelFileSource } from './source.js'

/**
 * A safetensors file read defensively: model files are untrusted. The header length, every offset and
 * every shape is checked against the file's real size before anything is allocated or read, so a lying
 * header ends in a ModelLoadError, never a read outside the file or an allocation it did not pay for.
 */

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
}
/** The float dtypes the runtime converts to float32. */
export const LOADABLE_DTYPES = ['F32', 'F16', 'BF16'] as const
/** Headers above this are refused (real ones are a few hundred KB even for big models). */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024

export interface TensorInfo {
  name: string
  dtype: string
  shape: number[]
  /** absolute byte range in the file */
  begin: number
  end: number
}

/** Parses and checks a header: `header` is its JSON bytes, `fileSize` the whole file's size. */
export function parseSafetensorsHeader(header: Uint8Array, fileSize: number, where = 'safetensors'): Map<string, TensorInfo> {
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(header))
  } catch (e) {
    throw new ModelLoadError(`${where}: the header is not valid UTF-8 JSON (${(e as Error).message})`)
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new ModelLoadError(`${where}: the header must be a JSON object`)
  const dataStart = 8 + header.length
  const dataSize = fileSize - dataStart
  const out = new Map<string, TensorInfo>()
  const ranges: [number, number, string][] = []
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue
    const at = `${where}: tensor ${JSON.stringify(name)}`
    if (!entry || typeof entry !== 'object') throw new ModelLoadError(`${at}: entry must be an object`)
    const { dtype, shape, data_offsets: offs } = entry as Record<string, unknown>
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) throw new ModelLoadError(`${at}: unknown dtype ${JSON.stringify(dtype)}`)
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((s) => Number.isSafeInteger(s) && s >= 0)) {
      throw new ModelLoadError(`${at}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`)
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new ModelLoadError(`${at}: data_offsets must be two non-negative integers, got ${JSON.stringify(offs)}`)
    }
    const [b, e] = offs as number[]
    if (b > e || e > dataSize) throw new ModelLoadError(`${at}: data_offsets [${b}, ${e}] lie outside the ${dataSize} data bytes of the file`)
    let numel = 1
    for (const s of shape as number[]) {
      numel *= s
      if (numel > dataSize) throw new ModelLoadError(`${at}: shape ${JSON.stringify(shape)} declares more elements than the file holds`)
    }
    if (numel * DTYPE_BYTES[dtype] !== e - b) {
      throw new ModelLoadError(`${at}: shape ${JSON.stringify(shape)} of dtype ${dtype} needs ${numel * DTYPE_BYTES[dtype]} bytes, data_offsets give ${e - b}`)
    }
    ranges.push([b, e, name])
    out.set(name, { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e })
  }
  ranges.sort((x, y) => x[0] - y[0])
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) throw new ModelLoadError(`${where}: tensors ${JSON.stringify(ranges[i - 1][2])} and ${JSON.stringify(ranges[i][2])} overlap`)
  }
  return out
}

/** The header's byte length from the file's first 8 bytes, checked against the file's size. */
function headerLength(first8: Uint8Array, size: number, path: string): number {
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true)
  if (n > BigInt(size - 8)) throw new ModelLoadError(`${path}: header length ${n} exceeds the file's ${size - 8} remaining bytes`)
  if (n > BigInt(MAX_HEADER_BYTES)) throw new ModelLoadError(`${path}: header length ${n} is above the ${MAX_HEADER_BYTES}-byte limit`)
  return Number(n)
}

/**
 * The tensors of a safetensors file held whole in memory (a small side file, such as TRIM-KV's gates), with
 * the same checks as `SafetensorsFile.open`. Errors are ModelLoadErrors that start with `where`.
 */
export function parseSafetensorsBytes(bytes: Uint8Array, where = 'safetensors'): Map<string, TensorInfo> {
  if (bytes.length < 8) throw new ModelLoadError(`${where}: ${bytes.length} bytes is too short for a safetensors file (no 8-byte header length)`)
  const n = headerLength(bytes, bytes.length, where)
  return parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, where)
}

/** One tensor of an in-memory file (`parseSafetensorsBytes`) as a fresh Float32Array: F32, F16 or BF16. */
export function tensorFloat32(bytes: Uint8Array, info: TensorInfo, where = 'safetensors'): Float32Array {
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
    throw new ModelLoadError(`${where}: tensor ${JSON.stringify(info.name)} has dtype ${info.dtype}; supported: ${LOADABLE_DTYPES.join(', ')}`)
  }
  const raw = bytes.slice(info.begin, info.end)
  if (info.dtype === 'F32') return new Float32Array(raw.buffer, 0, raw.length >> 2)
  const u16 = new Uint16Array(raw.buffer, 0, raw.length >> 1)
  const out = new Float32Array(u16.length)
  if (info.dtype === 'F16') {
    const table = halfTable()
    for (let i = 0; i < u16.length; i++) out[i] = table[u16[i]]
  } else {
    const U = new Uint32Array(out.buffer)
    for (let i = 0; i < u16.length; i++) U[i] = u16[i] << 16
  }
  return out
}

let f16Table: Float32Array | undefined
/** float16 bits -> float32 for all 65536 patterns (subnormals, infinities and NaN included) */
function halfTable(): Float32Array {
  if (f16Table) return f16Table
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const frac = h & 0x3ff
    if (exp === 0) t[h] = sign * frac * 2 ** -24
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15)
  }
  return (f16Table = t)
}

export class SafetensorsFile {
  private open = true

  private constructor(
    private readonly source: ModelFileSource,
    readonly name: string,
    readonly tensors: Map<string, TensorInfo>,
  ) {}

  /** how messages name this file (its path or URL) */
  get path(): string {
    return this.source.describe(this.name)
  }

  /** Reads and checks the header of file `name` of `source`. */
  static async open(source: ModelFileSource, name: string): Promise<SafetensorsFile> {
    const path = source.describe(name)
    const size = await source.size(name)
    if (size === null) throw new ModelLoadError(`cannot open ${path}: no such file`)
    if (size < 8) throw new ModelLoadError(`${path}: ${size} bytes is too short for a safetensors file (no 8-byte header length)`)
    const lenBuf = new Uint8Array(8)
    await source.read(name, 0, lenBuf)
    const header = new Uint8Array(headerLength(lenBuf, size, path))
    await source.read(name, 8, header)
    return new SafetensorsFile(source, name, parseSafetensorsHeader(header, size, path))
  }

  /**
   * Reads a tensor as float32 into the arena at `ptr` (which holds numel floats), in chunks: each chunk
   * lands in a scratch buffer first, and the arena view is taken after the read, so an arena that grows
   * meanwhile never leaves a stale view.
   */
  async readInto(info: TensorInfo, heap: Heap, ptr: number): Promise<void> {
    if (!this.open) throw new ModelLoadError(`${this.path}: file already closed`)
    if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
      throw new ModelLoadError(`${this.path}: tensor ${JSON.stringify(info.name)} has dtype ${info.dtype}; supported: ${LOADABLE_DTYPES.join(', ')}`)
    }
    const bytes = info.end - info.begin
    const CHUNK = 1 << 22
    const buf = new Uint8Array(Math.min(CHUNK, bytes))
    const table = info.dtype === 'F16' ? halfTable() : null
    for (let off = 0; off < bytes; off += CHUNK) {
      const len = Math.min(CHUNK, bytes - off)
      const chunk = buf.subarray(0, len)
      await this.source.read(this.name, info.begin + off, chunk)
      if (info.dtype === 'F32') {
        heap.u8(ptr + off, len).set(chunk)
        continue
      }
      const u16 = new Uint16Array(buf.buffer, 0, len >> 1)
      const base = (ptr + off * 2) >> 2
      if (table) {
        const F = heap.F32
        for (let i = 0; i < u16.length; i++) F[base + i] = table[u16[i]]
      } else {
        const U = new Uint32Array(heap.memory.buffer)
        for (let i = 0; i < u16.length; i++) U[base + i] = u16[i] << 16
      }
    }
  }

  close(): void {
    this.open = false
  }
}

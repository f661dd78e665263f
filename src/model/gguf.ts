import type { Heap } from '../backend/heap.js'
import { ModelLoadError } from './errors.js'
import { dequantize, GGML_BLOCK, ggmlTypeName } from './ggml.js'
import type { ModelFileSource } from './source.js'
import { NeedMoreBytes, parseGgufHeader, type GgufHeader } from './gguf-header.js'

/**
 * A GGUF file (llama.cpp's format, spec: ggml/docs/gguf.md) read defensively: its header is parsed by
 * gguf-header.ts, then every tensor's type, shape, offset and size is checked against the file's real
 * size here, before anything is allocated or read. Tensors are widened to float32 at load (F16, BF16)
 * or dequantized (Q8_0, Q4_0).
 */

/** The same limits as safetensors headers: real headers (vocabulary included) are a few MB. */
export const MAX_GGUF_HEADER_BYTES = 48 * 1024 * 1024

export interface GgufTensor {
  name: string
  /** ggml type id (GGML_TYPE) */
  type: number
  /** the shape in Hugging Face order (outermost first): GGUF's ne[] reversed */
  shape: number[]
  /** absolute byte range in the file */
  begin: number
  end: number
}

export type GgufMetadata = Record<string, unknown>

/** Checks the parsed tensor infos against the file: types kvkit loads, whole blocks, in-file, no overlap. */
export function checkGgufTensors(parsed: Pick<GgufHeader, 'tensorInfos' | 'dataStart'>, fileSize: number, where: string): Map<string, GgufTensor> {
  const dataStart = parsed.dataStart
  if (dataStart > fileSize) throw new ModelLoadError(`${where}: the header ends at byte ${dataStart}, past the file's ${fileSize} bytes`)
  const out = new Map<string, GgufTensor>()
  for (const t of parsed.tensorInfos) {
    const at = `${where}: tensor ${JSON.stringify(t.name)}`
    if (out.has(t.name)) throw new ModelLoadError(`${at} appears twice`)
    const shape = [...t.ne].reverse()
    const block = GGML_BLOCK[t.type]
    let numel = 1
    for (const s of shape) {
      numel *= s
      if (numel > fileSize * 2) throw new ModelLoadError(`${at}: shape ${JSON.stringify(shape)} declares more elements than the file holds`)
    }
    const rowLen = shape[shape.length - 1]
    if (block && rowLen % block.elements !== 0) throw new ModelLoadError(`${at}: rows of ${rowLen} elements are not whole ${block.name} blocks of ${block.elements}`)
    const offset = t.offset
    const bytes = block ? (numel / block.elements) * block.bytes : 0
    if (dataStart + offset + bytes > fileSize) {
      throw new ModelLoadError(`${at}: ${bytes} bytes at data offset ${offset} lie outside the file's ${fileSize - dataStart} data bytes`)
    }
    out.set(t.name, { name: t.name, type: t.type, shape, begin: dataStart + offset, end: dataStart + offset + bytes })
  }
  const ranges = [...out.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin)
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].begin < ranges[i - 1].end) throw new ModelLoadError(`${where}: tensors ${JSON.stringify(ranges[i - 1].name)} and ${JSON.stringify(ranges[i].name)} overlap`)
  }
  return out
}

export class GgufFile {
  private constructor(
    private readonly source: ModelFileSource,
    readonly name: string,
    readonly metadata: GgufMetadata,
    readonly tensors: Map<string, GgufTensor>,
  ) {}

  get path(): string {
    return this.source.describe(this.name)
  }

  /** Reads and checks the header of file `name` of `source`; ModelLoadError for anything malformed. */
  static async open(source: ModelFileSource, name: string): Promise<GgufFile> {
    const path = source.describe(name)
    const size = await source.size(name)
    if (size === null) throw new ModelLoadError(`cannot open ${path}: no such file`)
    if (size < 24) throw new ModelLoadError(`${path}: ${size} bytes is too short for a GGUF file`)
    // the header's length is known only once it is parsed: read a prefix, and a twice longer one while it ends too soon
    for (let have = Math.min(size, 1 << 20); ; have = Math.min(size, have * 2, MAX_GGUF_HEADER_BYTES)) {
      const bytes = new Uint8Array(have)
      await source.read(name, 0, bytes)
      try {
        const parsed = parseGgufHeader(bytes, size, path)
        return new GgufFile(source, name, parsed.metadata, checkGgufTensors(parsed, size, path))
      } catch (e) {
        if (!(e instanceof NeedMoreBytes)) throw e
        if (have >= MAX_GGUF_HEADER_BYTES) throw new ModelLoadError(`${path}: the GGUF header runs past ${MAX_GGUF_HEADER_BYTES} bytes`)
      }
    }
  }

  /** Reads a tensor widened to float32 into `out` (numel floats). */
  read(t: GgufTensor, out: Float32Array): Promise<void> {
    return this.widen(t, () => out, 0)
  }

  /** Reads a tensor as float32 into the arena at `ptr`, which holds numel floats. */
  readInto(t: GgufTensor, heap: Heap, ptr: number): Promise<void> {
    return this.widen(t, () => heap.F32, ptr >> 2)
  }

  /**
   * Widens in chunks of whole blocks, so a tensor of gigabytes never has its file bytes in memory at
   * once; the target view is taken after each read, as an arena that grows meanwhile detaches old views.
   */
  private async widen(t: GgufTensor, target: () => Float32Array, at: number): Promise<void> {
    const block = GGML_BLOCK[t.type]
    if (!block) throw new ModelLoadError(`${this.path}: tensor ${JSON.stringify(t.name)} is ggml ${ggmlTypeName(t.type)}; kvkit loads F32, F16, BF16, Q8_0 and Q4_0`)
    const blocksPerChunk = Math.max(1, Math.floor((1 << 22) / block.bytes))
    const total = (t.end - t.begin) / block.bytes
    const buf = new Uint8Array(Math.min(total, blocksPerChunk) * block.bytes)
    for (let b = 0; b < total; b += blocksPerChunk) {
      const n = Math.min(blocksPerChunk, total - b)
      const chunk = buf.subarray(0, n * block.bytes)
      await this.source.read(this.name, t.begin + b * block.bytes, chunk)
      dequantize(t.type, chunk, target(), at + b * block.elements, n * block.elements)
    }
  }
}

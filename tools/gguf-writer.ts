import { GGUFValueType, serializeGgufMetadata, type GGUFTypedMetadata } from '@huggingface/gguf'
import { GGML_BLOCK } from '../src/model/ggml.js'
import { encodeTensor } from './ggml-quantize.js'

/**
 * A GGUF v3 file in memory (spec: ggml/docs/gguf.md): the metadata through @huggingface/gguf's
 * serializer, then the tensor infos and the tensors, each at a 32-byte-aligned offset.
 */

/** a metadata value with its GGUF type (and element type for arrays) */
export type GgufValue = { type: GGUFValueType; value: unknown; subType?: GGUFValueType }

export interface GgufTensorIn {
  name: string
  /** ggml type id to store it as */
  type: number
  /** Hugging Face order (outermost first); written reversed, as GGUF's ne[] */
  shape: number[]
  data: Float32Array
}

const ALIGNMENT = 32
const pad = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT

export const u32 = (value: number): GgufValue => ({ type: GGUFValueType.UINT32, value })
export const f32 = (value: number): GgufValue => ({ type: GGUFValueType.FLOAT32, value })
export const str = (value: string): GgufValue => ({ type: GGUFValueType.STRING, value })
export const bool = (value: boolean): GgufValue => ({ type: GGUFValueType.BOOL, value })
export const strings = (value: string[]): GgufValue => ({ type: GGUFValueType.ARRAY, subType: GGUFValueType.STRING, value })
export const i32s = (value: number[]): GgufValue => ({ type: GGUFValueType.ARRAY, subType: GGUFValueType.INT32, value })

export function writeGguf(metadata: Record<string, GgufValue>, tensors: GgufTensorIn[]): Uint8Array {
  const typed = {
    version: { value: 3, type: GGUFValueType.UINT32 },
    tensor_count: { value: BigInt(tensors.length), type: GGUFValueType.UINT64 },
    kv_count: { value: BigInt(Object.keys(metadata).length), type: GGUFValueType.UINT64 },
    ...metadata,
  } as unknown as GGUFTypedMetadata
  // alignment 1: no padding between the metadata and the tensor infos that follow it
  const head = serializeGgufMetadata(typed, { alignment: 1 })
  const enc = new TextEncoder()
  const blobs = tensors.map((t) => {
    const block = GGML_BLOCK[t.type]
    if (!block) throw new RangeError(`${t.name}: ggml type ${t.type} cannot be written`)
    if (t.shape[t.shape.length - 1] % block.elements) throw new RangeError(`${t.name}: rows of ${t.shape[t.shape.length - 1]} are not whole ${block.name} blocks`)
    return encodeTensor(t.type, t.data)
  })
  const infos: Uint8Array[] = []
  let offset = 0
  tensors.forEach((t, i) => {
    const name = enc.encode(t.name)
    const info = new Uint8Array(8 + name.length + 4 + 8 * t.shape.length + 4 + 8)
    const v = new DataView(info.buffer)
    v.setBigUint64(0, BigInt(name.length), true)
    info.set(name, 8)
    let at = 8 + name.length
    v.setUint32(at, t.shape.length, true)
    at += 4
    for (const s of [...t.shape].reverse()) {
      v.setBigUint64(at, BigInt(s), true)
      at += 8
    }
    v.setUint32(at, t.type, true)
    v.setBigUint64(at + 4, BigInt(offset), true)
    infos.push(info)
    offset = pad(offset + blobs[i].length)
  })
  const headerBytes = head.length + infos.reduce((a, b) => a + b.length, 0)
  const dataStart = pad(headerBytes)
  const out = new Uint8Array(dataStart + offset)
  out.set(head, 0)
  let at = head.length
  for (const info of infos) {
    out.set(info, at)
    at += info.length
  }
  at = dataStart
  for (const b of blobs) {
    out.set(b, at)
    at = pad(at + b.length)
  }
  return out
}

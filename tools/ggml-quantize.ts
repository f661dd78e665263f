import { GGML_TYPE, toF16 } from '../src/model/ggml.js'

/**
 * ggml's reference quantizers (ggml/src/ggml-quants.c quantize_row_q8_0_ref, quantize_row_q4_0_ref),
 * for kvkit's GGUF writer: `x` holds whole blocks of 32 floats; returns the blocks' bytes.
 */

/** C's roundf: halves away from zero */
const roundf = (v: number) => Math.sign(v) * Math.round(Math.abs(v))

export function quantizeQ8_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34)
  const view = new DataView(out.buffer)
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]))
    const d = Math.fround(amax / 127)
    const id = d ? Math.fround(1 / d) : 0
    view.setUint16(34 * b, toF16(d), true)
    for (let j = 0; j < 32; j++) view.setInt8(34 * b + 2 + j, roundf(Math.fround(x[32 * b + j] * id)))
  }
  return out
}

export function quantizeQ4_0(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 18)
  const view = new DataView(out.buffer)
  for (let b = 0; b < x.length / 32; b++) {
    // the value of largest magnitude, with its sign: it maps to -8 exactly
    let amax = 0
    let max = 0
    for (let j = 0; j < 32; j++) {
      const v = x[32 * b + j]
      if (amax < Math.abs(v)) {
        amax = Math.abs(v)
        max = v
      }
    }
    const d = Math.fround(max / -8)
    const id = d ? Math.fround(1 / d) : 0
    view.setUint16(18 * b, toF16(d), true)
    for (let j = 0; j < 16; j++) {
      // (int8_t) truncates toward zero, as in C
      const q0 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[32 * b + j] * id) + 8.5)))
      const q1 = Math.min(15, Math.trunc(Math.fround(Math.fround(x[32 * b + 16 + j] * id) + 8.5)))
      out[18 * b + 2 + j] = q0 | (q1 << 4)
    }
  }
  return out
}

/** float32 values as the bytes of ggml type `type` (F32, F16, BF16, Q8_0, Q4_0) */
export function encodeTensor(type: number, x: Float32Array): Uint8Array {
  switch (type) {
    case GGML_TYPE.F32:
      return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength))
    case GGML_TYPE.F16: {
      const out = new Uint16Array(x.length)
      for (let i = 0; i < x.length; i++) out[i] = toF16(x[i])
      return new Uint8Array(out.buffer)
    }
    case GGML_TYPE.BF16: {
      // round to nearest even on the dropped 16 bits, as torch does (NaN kept quiet)
      const bits = new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength))
      const out = new Uint16Array(x.length)
      for (let i = 0; i < x.length; i++) {
        const b = bits[i]
        out[i] = Number.isNaN(x[i]) ? (b >>> 16) | 0x40 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16
      }
      return new Uint8Array(out.buffer)
    }
    case GGML_TYPE.Q8_0:
      return quantizeQ8_0(x)
    case GGML_TYPE.Q4_0:
      return quantizeQ4_0(x)
    default:
      throw new RangeError(`no encoder for ggml type ${type}`)
  }
}

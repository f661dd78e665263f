/** A float32 safetensors file of these tensors, in order (for random test models and tools). */
export function safetensorsF32(tensors: { name: string; shape: number[]; data: Float32Array }[]): Buffer {
  const header: Record<string, unknown> = {}
  const chunks: Buffer[] = []
  let off = 0
  for (const { name, shape, data } of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] }
    chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    off += data.byteLength
  }
  const json = Buffer.from(JSON.stringify(header))
  const len = Buffer.alloc(8)
  len.writeBigUInt64LE(BigInt(json.length))
  return Buffer.concat([len, json, ...chunks])
}

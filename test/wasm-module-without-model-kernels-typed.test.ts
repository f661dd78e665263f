/**
 * createBackend given a wasm module (`wasm` option) that passes loadWasm's checks (imports env.memory,
 * exports heapBase) but lacks the model kernels, another version's build, refuses it with loadWasm's
 * WasmLoadError naming the missing export: it was a plain Error.
 */
import { describe, expect, it } from 'vitest'
import { createBackend, WasmLoadError } from '../src/index.js'

// (module (import "env" "memory" (memory 1)) (func (export "heapBase") (result i32) i32.const 1024))
const BYTES = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f,
  0x02, 0x0f, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x01,
  0x03, 0x02, 0x01, 0x00,
  0x07, 0x0c, 0x01, 0x08, 0x68, 0x65, 0x61, 0x70, 0x42, 0x61, 0x73, 0x65, 0x00, 0x00,
  0x0a, 0x07, 0x01, 0x05, 0x00, 0x41, 0x80, 0x08, 0x0b,
])

describe('a wasm module without the model kernels', () => {
  it('is a WasmLoadError naming the missing export', async () => {
    const err = await createBackend('wasm', { wasm: BYTES, relaxed: false }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(WasmLoadError)
    expect((err as Error).message).toMatch(/^wasm module lacks the model kernel export 'matmul': not this kvkit version's build/)
  })
})

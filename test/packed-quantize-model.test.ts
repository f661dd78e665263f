import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'

// KIVI end to end on the fixture model through the public API: the store packing with the compute
// core's kernels (assembly/kernels/packed-quantize.ts) generates exactly the tokens it generates with
// the TypeScript packing (src/cache/packing.ts, the path before the kernels), the same model weights on
// the same wasm build, in one run.

let kernel: LlamaModel
let typescript: LlamaModel
const backends: CreatedBackend[] = []
beforeAll(async () => {
  const withKernels = await createBackend('wasm', { relaxed: false })
  // the same backend without the packing kernels: the store falls back to packing.ts
  const base = await createBackend('wasm', { relaxed: false })
  const without = { ...base, packKeys: undefined, packSignKeys: undefined, packValues: undefined, firstUnpackable: undefined }
  backends.push(withKernels, base)
  expect(typeof withKernels.packKeys).toBe('function')
  kernel = (await loadModel(defaultModelDir(), { backendInstance: withKernels })) as LlamaModel
  typescript = (await loadModel(defaultModelDir(), { backendInstance: without })) as LlamaModel
})
afterAll(() => {
  kernel?.dispose()
  typescript?.dispose()
  for (const b of backends) b.close?.()
})

describe('KIVI on the fixture model: the packing kernels give the TypeScript packing tokens', () => {
  it.each(['kivi:bits=2', 'kivi:bits=4', 'kivi:bits=2,residual=32'])('%s on a 700-token prompt, 24 new tokens', async (policy) => {
    const prompt = [0, ...Array.from({ length: 699 }, (_, i) => 2 + ((i * 7919) % 4000))]
    const run = (m: LlamaModel) => m.generate(prompt, { maxNewTokens: 24, policy }).result
    const [a, b] = [await run(kernel), await run(typescript)]
    // the prompt was packed (not a comparison of two float caches)
    expect(a.stats.kvBytes.quantized).toBeGreaterThan(0)
    expect(a.stats.kvBytes).toEqual(b.stats.kvBytes)
    expect(a.ids.length).toBe(24)
    expect(a.ids).toEqual(b.ids)
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { pageBytes, valueGroupFor } from '../src/cache/formats.js'
import { PolicyOptionValueError } from '../src/policies/errors.js'

// KIVI end to end on the fixture model through the public API: the store packing with the compute
// core's kernels (assembly/kernels/packed-quantize.ts) generates exactly the tokens it generates with
// the TypeScript packing (src/cache/packing.ts, the path before the kernels), the same model weights on
// the same wasm build, in one run. KIVI's groupSize (its released group_size, Hugging Face's
// q_group_size) too: with groups of 128 the two packings give the same tokens and bytes, the packed rows
// are whole groups of 128, and a packed key holds fewer bytes than at 32 (each float16 (scale, min)
// shared by 4x the tokens, values in groups of 64 channels, one a row). Bad group sizes are refused,
// naming the value, before any work.

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

const prompt = [0, ...Array.from({ length: 699 }, (_, i) => 2 + ((i * 7919) % 4000))]

describe('KIVI on the fixture model: the packing kernels give the TypeScript packing tokens', () => {
  it.each(['kivi:bits=2', 'kivi:bits=4', 'kivi:bits=2,residual=32', 'kivi:bits=2,groupSize=128'])('%s on a 700-token prompt, 24 new tokens', async (policy) => {
    const run = (m: LlamaModel) => m.generate(prompt, { maxNewTokens: 24, policy }).result
    const [a, b] = [await run(kernel), await run(typescript)]
    // the prompt was packed (not a comparison of two float caches)
    expect(a.stats.kvBytes.quantized).toBeGreaterThan(0)
    expect(a.stats.kvBytes).toEqual(b.stats.kvBytes)
    expect(a.ids.length).toBe(24)
    expect(a.ids).toEqual(b.ids)
  })
})

/** bytes a packed token takes in one (layer, KV head): int2 keys and values of head_dim 64, groups of `group` */
function packedBytesPerToken(group: number): number {
  const pt = Math.max(64, group)
  return (pageBytes('int2', 'key', pt, 64, group) + pageBytes('int2', 'value', pt, 64, valueGroupFor(group, 64))) / pt
}

describe('KIVI groupSize on the fixture model', () => {
  it('groupSize=128: whole groups of 128 are packed, and a packed token holds fewer bytes than at 32', async () => {
    const run = (policy: string) => kernel.generate(prompt, { maxNewTokens: 24, policy }).result
    const [a, g32] = [await run('kivi:bits=2,groupSize=128'), await run('kivi:bits=2')]
    const streams = kernel.config.layers * kernel.config.kvHeads
    const rows = (quantized: number, group: number) => quantized / streams / packedBytesPerToken(group)
    // every (layer, head) packed whole groups: 512 rows at 128 (the float tail 128 .. 255), 576 at 32
    expect(rows(a.stats.kvBytes.quantized, 128) % 128).toBe(0)
    expect(rows(g32.stats.kvBytes.quantized, 32) % 32).toBe(0)
    expect(rows(a.stats.kvBytes.quantized, 128)).toBeGreaterThan(0)
    // a packed token: 38 bytes a (layer, KV head) at 128 (keys 18, values 20) against 48 at 32 (24 + 24)
    expect(packedBytesPerToken(128)).toBe(38)
    expect(packedBytesPerToken(32)).toBe(48)
  })

  it.each([48, 0, 256])('kivi:groupSize=%i is refused naming the value, before any generation', (g) => {
    expect(() => kernel.generate(prompt, { maxNewTokens: 2, policy: `kivi:groupSize=${g}` })).toThrow(PolicyOptionValueError)
    expect(() => kernel.generate(prompt, { maxNewTokens: 2, policy: `kivi:groupSize=${g}` })).toThrow(String(g))
  })

  it('createKivi refuses a group size given as a string, naming it', async () => {
    const { createKivi } = await import('../src/policies/kivi.js')
    expect(() => createKivi({ groupSize: '32' as unknown as number })).toThrow(PolicyOptionValueError)
    expect(() => createKivi({ groupSize: '32' as unknown as number })).toThrow('"32"')
  })
})

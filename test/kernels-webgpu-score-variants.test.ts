import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { SCORE_VARIANTS, UnknownScoreVariantError, type ScoreVariant } from '../src/backend/webgpu/score-variants.js'
import { expectClose, normals, pagedStream, pagedView, rng } from './kernels-helpers.js'
import { onGpu, testGpu } from './webgpu-helpers.js'

// Every key-scoring variant (src/backend/webgpu/score-variants.ts) against the TypeScript twin of the
// wasm kernel and against the quad kernel, once with subgroup reductions and once with the
// workgroup-memory path. Sizes are small (lavapipe) but ragged: n not a multiple of any variant's rows a
// group or a workgroup pass, 1, 4 and 5 query heads, rows that are not 16-byte aligned, d past one
// staged chunk and past the query columns a lane keeps in registers.
const gpu = await testGpu()
const ref = await createBackend('reference')
const R = new Ops(ref)
const heap = ref.heap
const paths = gpu ? [true, false].filter((sg) => !sg || gpu.subgroups) : []
const names = Object.keys(SCORE_VARIANTS) as ScoreVariant[]

afterAll(() => gpu?.destroy())

describe.skipIf(!gpu).each(paths.map((subgroups) => ({ subgroups })))('scoring variants (subgroups: $subgroups)', ({ subgroups }) => {
  let K: WebGpuKernels
  beforeAll(async () => {
    K = await WebGpuKernels.create({ ...gpu!, subgroups })
  })

  it.each([
    // qHeads, d, n, pageTokens
    [1, 128, 1001, 64], [4, 128, 333, 16], [5, 64, 70, 16], [4, 13, 33, 32], [2, 300, 37, 4], [1, 4, 140001, 1024],
  ])('every variant matches the reference for qHeads=%i d=%i n=%i pageTokens=%i', async (qHeads, d, n, pageTokens) => {
    const rand = rng(qHeads * 1000 + d * 10 + n)
    const keys = pagedStream(heap, normals(rand, n * d), n, d, pageTokens)
    const q = heap.f32From(normals(rand, qHeads * d))
    const outs = names.map(() => heap.allocF32(qHeads * n))
    const got = await onGpu(K, heap, outs.map((o) => [o.ptr, qHeads * n * 4]), () => {
      names.forEach((name, v) => {
        K.scoreVariant = name
        K.scoreKeys(q.ptr, qHeads, d, keys.table.ptr, pageTokens, n, 0.125, outs[v].ptr)
      })
    })
    K.scoreVariant = 'quad'
    const want = heap.allocF32(qHeads * n)
    R.scoreKeys(q, qHeads, pagedView(keys, keys, n, d, pageTokens), 0.125, want)
    const quad = new Float32Array(got[names.indexOf('quad')])
    names.forEach((name, v) => {
      const mine = new Float32Array(got[v])
      expectClose(mine, want.view, 1e-4, 1e-5 * Math.sqrt(d), `${name} vs the reference`)
      // the same sums in another order: within float32 rounding of the quad kernel's
      expectClose(mine, quad, 1e-5, 1e-6 * Math.sqrt(d), `${name} vs quad`)
    })
    for (const t of [q, want, keys, ...outs]) t.free()
  })

  it('refuses a name that is no variant, naming it', () => {
    expect(() => {
      K.scoreVariant = 'warp-r16' as ScoreVariant
    }).toThrow(UnknownScoreVariantError)
    expect(() => {
      K.scoreVariant = 'warp-r16' as ScoreVariant
    }).toThrow(/warp-r16/)
    expect(K.scoreVariant).toBe('quad')
    expect(() => K.scoreShape('warp-r16' as ScoreVariant)).toThrow(UnknownScoreVariantError)
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { PageFormat } from '../src/cache/formats.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { createPolicy } from '../src/policies/registry.js'
import { composePolicies } from '../src/policies/compose.js'
import { PageBounds } from '../src/policies/page-bounds.js'
import { Ops } from '../src/backend/ops.js'
import { questSelect } from '../src/policies/quest.js'
import { selectionPolicy } from '../src/policies/selection.js'
import type { KVCache } from '../src/cache/types.js'
import type { PolicyContext } from '../src/policies/types.js'
import { normals, rng } from './kernels-helpers.js'

// Quest's page bounds over KIVI-packed keys (PageBounds: packed rows read back dequantized, then the
// pageMinMax kernel) against a plain reference: every key read back (readKeys), then max and min per
// page and channel in TypeScript, bit for bit, for every integer key format, Quest pages that split a
// token group, span several groups or cache pages, or straddle the packed prefix and the float rows,
// built at once and followed as KIVI packs more. On the fixture, Quest over KIVI keeps those bounds at
// every step and generates the tokens recorded for it.

let wasm: CreatedBackend
beforeAll(async () => {
  wasm = await createBackend('wasm', { relaxed: false })
})

const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length)

/** the reference: every key read back (dequantized where packed), then max and min per page and channel, rows [pages][kmax | kmin] */
function dequantizedBounds(cache: KVCache, layer: number, head: number, d: number, page: number): Float32Array {
  const k = cache.readKeys(layer, head)
  const n = k.length / d
  const pages = Math.ceil(n / page)
  const out = new Float32Array(pages * 2 * d)
  for (let p = 0; p < pages; p++) {
    for (let c = 0; c < d; c++) {
      let hi = -Infinity
      let lo = Infinity
      for (let t = p * page; t < Math.min(n, (p + 1) * page); t++) {
        hi = Math.max(hi, k[t * d + c])
        lo = Math.min(lo, k[t * d + c])
      }
      out[p * 2 * d + c] = hi
      out[p * 2 * d + d + c] = lo
    }
  }
  return out
}

/** the bounds PageBounds gives, as a copy */
function boundsOf(ctx: PolicyContext, b: PageBounds, layer: number, head: number): Float32Array {
  const v = b.view(ctx, layer, head)
  const at = ctx.ops.heap.I32[v.kTable >> 2] >> 2
  return ctx.ops.heap.F32.slice(at, at + v.n * v.d)
}

describe('page bounds of KIVI-packed keys, from the codes', () => {
  const d = 12
  const n = 230
  for (const keys of ['int8', 'int4', 'int2', 'int1'] as const) {
    for (const pageTokens of [32, 64]) {
      it(`${keys} keys, cache pages of ${pageTokens}: Quest pages of 8, 16, 24, 64 and 96 equal the dequantized keys' bounds, built at once and followed as KIVI packs more`, () => {
        const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: d, pageTokens })
        const r = rng(pageTokens + keys.length)
        // a wide spread of scales: channel c scaled by 2^(c - 6)
        const rows = normals(r, n * 2 * d).map((x, i) => x * 2 ** ((i % d) - 6))
        cache.append(0, rows, normals(r, n * 2 * d), Int32Array.from({ length: n }, (_, i) => i))
        const ctx = { cache, ops: new Ops(wasm), model: { headDim: d, kvHeads: 2 } } as unknown as PolicyContext
        const quantize = (upto: number, format: PageFormat) => cache.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto, keys: format, values: 'int2' as const })) })
        try {
          for (const page of [8, 16, 24, 64, 96]) {
            // packed in two steps (a second packed run after the first); bounds made before, between and after
            const incremental = new PageBounds(wasm.heap, page)
            const fresh = () => {
              const b = new PageBounds(wasm.heap, page)
              try {
                return [0, 1].map((head) => boundsOf(ctx, b, 0, head))
              } finally {
                b.free()
              }
            }
            for (const step of [0, 96, 160]) {
              if (step > cache.segments(0, 0).reduce((m, s) => (s.format === keys ? s.start + s.n : m), 0)) quantize(step, keys)
              for (let head = 0; head < 2; head++) {
                const want = bits(dequantizedBounds(cache, 0, head, d, page))
                expect(bits(boundsOf(ctx, incremental, 0, head)), `page ${page}, packed ${step}, head ${head}, incremental`).toEqual(want)
              }
              const rebuilt = fresh()
              rebuilt.forEach((b, head) => expect(bits(b), `page ${page}, packed ${step}, head ${head}, rebuilt`).toEqual(bits(dequantizedBounds(cache, 0, head, d, page))))
            }
            incremental.free()
            // the packing is as laid out: the first step packed rows [0, 96)
            expect(cache.segments(0, 0)[0].format).toBe(keys)
            cache.clear()
            cache.append(0, rows, normals(r, n * 2 * d), Int32Array.from({ length: n }, (_, i) => i))
          }
        } finally {
          cache.dispose()
        }
      })
    }
  }
})

describe('the fixture model: KIVI + Quest', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = (await loadModel(defaultModelDir(), { backendInstance: wasm })) as LlamaModel
  })
  afterAll(() => model?.dispose())

  it('kivi:bits=2 + quest: every step\'s bounds are the dequantized keys\' bit for bit, and the tokens are those the dequantizing path generated', async () => {
    const prompt = [0, ...Array.from({ length: 700 }, (_, i) => 2 + ((i * 7919) % 4000))]
    const page = 16
    const mismatches: string[] = []
    let compared = 0
    let packedPages = 0
    const quest = selectionPolicy({
      name: 'quest',
      selector() {
        let bounds: PageBounds | null = null
        return {
          select(ctx, layer, query) {
            if (layer < 2) return null
            bounds ??= new PageBounds(ctx.ops.heap, page)
            for (let g = 0; g < ctx.model.kvHeads; g++) {
              const got = bits(boundsOf(ctx, bounds, layer, g))
              const want = bits(dequantizedBounds(ctx.cache, layer, g, ctx.model.headDim, page))
              compared++
              packedPages += ctx.cache.segments(layer, g)[0].format === 'int2' ? 1 : 0
              const bad = got.length !== want.length ? 0 : got.findIndex((x, i) => x !== want[i])
              if (bad >= 0) mismatches.push(`layer ${layer} head ${g}: float ${bad}`)
            }
            return questSelect(ctx, bounds, layer, query, 256)
          },
          dispose: () => bounds?.free(),
        }
      },
    })
    const r = await model.generate(prompt, { maxNewTokens: 40, policy: composePolicies([createPolicy('kivi:bits=2', model.config)!, quest]) }).result
    expect(mismatches).toEqual([])
    expect(compared).toBe(40 * (model.config.layers - 2) * model.config.kvHeads)
    expect(packedPages).toBe(compared)
    // recorded from this run (wasm, plain SIMD) at commit 056bbc2
    expect(r.ids).toEqual(GOLDEN)
  }, 300_000)
})

const GOLDEN = [705, 80, 15, 200, 200, 530, 314, 947, 2168, 442, 290, 262, 783, 2044, 278, 262, 405, 1369, 2940, 278, 262, 405, 1369, 2940, 278, 262, 405, 1369, 2940, 278, 262, 405, 1369, 2940, 278, 262, 405, 1369, 2940, 278]

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { createPolicy } from '../src/policies/registry.js'
import { composePolicies } from '../src/policies/compose.js'
import { PageBounds } from '../src/policies/page-bounds.js'
import { Ops } from '../src/backend/ops.js'
import { questSelect } from '../src/policies/quest.js'
import { selectionPolicy } from '../src/policies/selection.js'
import type { Policy, PolicyContext } from '../src/policies/types.js'
import { normals, rng } from './kernels-helpers.js'

// Issue 16: Quest's page bounds are recomputed only for the pages whose rows changed (the cache's
// KVCache.changes), where they were rebuilt for every head after each applied decision (a KIVI step).
// The reference is that rebuild: a fresh PageBounds per check reads every stored (dequantized) key of
// the head, and the incremental bounds must equal it bit for bit after every decode step and layer.

let wasm: CreatedBackend
beforeAll(async () => {
  wasm = await createBackend('wasm', { relaxed: false })
})

/** bits of a float32 array, so -0 and NaN payloads count */
const bits = (x: Float32Array) => new Uint32Array(x.buffer, x.byteOffset, x.length)

describe('KVCache.changes: the slots whose rows changed', () => {
  const make = (n: number) => {
    const c = new PagedKVCache(wasm, { layers: 1, kvHeads: 2, headDim: 8, pageTokens: 64 })
    const r = rng(n)
    c.append(0, normals(r, n * 16), normals(r, n * 16), Int32Array.from({ length: n }, (_, i) => i))
    return c
  }

  it('appends count nothing; quantization, eviction, overwrite and rollback their slots', () => {
    const c = make(200)
    expect(c.changes(0, 0, 0)).toEqual({ version: 0, from: 0, to: 0 })
    c.append(0, new Float32Array(16), new Float32Array(16), Int32Array.of(200))
    expect(c.changes(0, 0, 0)).toEqual({ version: 0, from: 0, to: 0 })
    // KIVI packs [0, 64) then [64, 96): the packed rows read back dequantized
    c.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 64, keys: 'int2', values: 'int2' }] })
    expect(c.changes(0, 0, 0)).toEqual({ version: 1, from: 0, to: 64 })
    expect(c.changes(0, 1, 0)).toEqual({ version: 0, from: 0, to: 0 })
    c.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: 96, keys: 'int2', values: 'int2' }] })
    expect(c.changes(0, 0, 1)).toEqual({ version: 2, from: 64, to: 96 })
    expect(c.changes(0, 0, 0)).toEqual({ version: 2, from: 0, to: 96 })
    // keep drops slot 150 of 201: slots 150.. shift down
    const keep = Int32Array.from({ length: 201 }, (_, i) => i).filter((i) => i !== 150)
    c.apply({ heads: [{ layer: 0, head: 1, keep }] })
    expect(c.changes(0, 1, 0)).toEqual({ version: 1, from: 150, to: 201 })
    // order-free eviction of 120 and 130: holes filled from the end
    c.apply({ heads: [], evictions: [{ layer: 0, head: 0, evict: Int32Array.of(120, 130) }] })
    expect(c.changes(0, 0, 2)).toEqual({ version: 3, from: 120, to: 201 })
    c.overwrite(0, 1, 10, new Float32Array(8), new Float32Array(8))
    expect(c.changes(0, 1, 1)).toEqual({ version: 2, from: 10, to: 11 })
    expect(() => c.changes(0, 1, 3)).toThrow(/since = 3/)
    c.dispose()
    const d = make(100)
    d.rollback(90)
    expect(d.changes(0, 1, 0)).toEqual({ version: 1, from: 90, to: 100 })
  })

  it('a consumer further behind than the log hears that everything may have changed', () => {
    const c = make(100)
    for (let i = 0; i < 20; i++) c.overwrite(0, 0, 50 + i, new Float32Array(8), new Float32Array(8))
    expect(c.changes(0, 0, 0)).toEqual({ version: 20, from: 0, to: Infinity })
    expect(c.changes(0, 0, 10)).toEqual({ version: 20, from: 60, to: 70 })
    c.dispose()
  })

  it('readKeyRange gives readKeys rows, packed and float, bit for bit', () => {
    const c = make(230)
    c.apply({ heads: [], quantize: [0, 1].map((head) => ({ layer: 0, head, upto: 160, keys: 'int2' as const, values: 'int2' as const })) })
    const all = c.readKeys(0, 1)
    for (const [a, b] of [[0, 230], [16, 48], [150, 170], [200, 230], [64, 64]]) expect(bits(c.readKeyRange(0, 1, a, b))).toEqual(bits(all.slice(a * 8, b * 8)))
    expect(() => c.readKeyRange(0, 1, 10, 231)).toThrow(/\[10, 231\)/)
    c.dispose()
  })
})

/** a page's bounds rows as a copy: [pages][2 x headDim] */
function boundsOf(ctx: PolicyContext, b: PageBounds, layer: number, head: number): Float32Array {
  const v = b.view(ctx, layer, head)
  const F = ctx.ops.heap.F32
  const at = ctx.ops.heap.I32[v.kTable >> 2] >> 2
  return F.slice(at, at + v.n * v.d)
}

interface Checks {
  compared: number
  mismatches: string[]
  /** changes the cache reported to a check (an applied decision touched rows) */
  changes: number
}

/**
 * Quest (questSelect) over incremental bounds, checked against a rebuild at every step, layer and head;
 * `rebuild` true selects over the rebuild instead (the path before issue 16: every applied decision
 * threw all bounds away).
 */
function checkedQuest(page: number, dense: number, tokens: number, checks: Checks, rebuild = false): Policy {
  return selectionPolicy({
    name: 'quest',
    selector() {
      let bounds: PageBounds | null = null
      const seen = new Map<number, number>()
      return {
        select(ctx, layer, query) {
          if (layer < dense) return null
          bounds ??= new PageBounds(ctx.ops.heap, page)
          const fresh = new PageBounds(ctx.ops.heap, page)
          try {
            for (let g = 0; g < ctx.model.kvHeads; g++) {
              const v = ctx.cache.changes(layer, g, seen.get(layer * 64 + g) ?? 0)
              if (v.from < v.to) checks.changes++
              seen.set(layer * 64 + g, v.version)
              const a = boundsOf(ctx, bounds, layer, g)
              const b = boundsOf(ctx, fresh, layer, g)
              checks.compared++
              const ua = bits(a)
              const ub = bits(b)
              const bad = ua.length !== ub.length ? 0 : ua.findIndex((x, i) => x !== ub[i])
              if (bad >= 0) checks.mismatches.push(`layer ${layer} head ${g} n ${ctx.cache.length(layer, g)}: float ${bad} (page ${Math.floor(bad / (2 * ctx.model.headDim))})`)
            }
            return questSelect(ctx, rebuild ? fresh : bounds, layer, query, tokens)
          } finally {
            fresh.free()
          }
        },
        dispose: () => bounds?.free(),
      }
    },
  })
}

describe('the fixture model: incremental Quest bounds equal a rebuild after every step', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = (await loadModel(defaultModelDir(), { backendInstance: wasm })) as LlamaModel
  })
  afterAll(() => model?.dispose())

  const prompt = [0, ...Array.from({ length: 700 }, (_, i) => 2 + ((i * 7919) % 4000))]
  const steps = 40

  // [what runs before Quest, Quest's options]: KIVI packs a key group during decoding (every 32 steps
  // per head), TOVA and StreamingLLM evict during decoding (order-free holes; a shifted window)
  const CASES: [string | null, { page: number; dense: number; tokens: number }][] = [
    ['kivi:bits=2', { page: 16, dense: 2, tokens: 256 }],
    ['kivi:bits=4,residual=64', { page: 8, dense: 1, tokens: 128 }],
    [null, { page: 16, dense: 2, tokens: 256 }],
    ['tova:tokens=500,every=3', { page: 16, dense: 2, tokens: 128 }],
    ['streamingllm:tokens=480,every=5', { page: 16, dense: 1, tokens: 160 }],
    ['snapkv:tokens=600+kivi:bits=2,residual=32', { page: 16, dense: 2, tokens: 192 }],
  ]

  it.each(CASES)('%s + quest %o: bounds bit for bit, tokens and logits of the rebuild path', async (before, q) => {
    const run = async (policy: Policy | string) => {
      const logits: Float32Array[] = []
      const r = await model.generate(prompt, { maxNewTokens: steps, policy, onLogits: (l) => logits.push(l.slice()) }).result
      return { ids: r.ids, logits }
    }
    const compose = (p: Policy) => (before ? composePolicies([createPolicy(before, model.config)!, p]) : p)
    const checks: Checks = { compared: 0, mismatches: [], changes: 0 }
    const checked = await run(compose(checkedQuest(q.page, q.dense, q.tokens, checks)))
    const previous = await run(compose(checkedQuest(q.page, q.dense, q.tokens, { compared: 0, mismatches: [], changes: 0 }, true)))
    const shipped = await run(`${before ? `${before}+` : ''}quest:tokens=${q.tokens},page=${q.page},dense=${q.dense}`)
    expect(checks.mismatches).toEqual([])
    const { layers, kvHeads } = model.config
    expect(checks.compared).toBe(steps * (layers - q.dense) * kvHeads)
    // the decisions under test happened during decoding (quest alone: none, the fold path)
    if (before) expect(checks.changes).toBeGreaterThan(0)
    for (const other of [previous, shipped]) {
      expect(other.ids).toEqual(checked.ids)
      expect(other.logits.length).toBe(steps)
      for (let s = 0; s < steps; s++) expect(bits(other.logits[s]), `step ${s}`).toEqual(bits(checked.logits[s]))
    }
  }, 300_000)
})

describe('float16 caches: new rows fold in place', () => {
  it('a float16 head\'s bounds follow appends without reading the cache back, and equal a rebuild bit for bit', () => {
    const d = 8
    const cache = new PagedKVCache(wasm, { layers: 1, kvHeads: 1, headDim: d, pageTokens: 64, kvDtype: 'float16' })
    let reads = 0
    // the cache as the policy sees it, counting the full read-backs a rebuild makes
    const counted = new Proxy(cache, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv)
        if (prop === 'readKeysInto') return (...a: Parameters<PagedKVCache['readKeysInto']>) => (reads++, target.readKeysInto(...a))
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
    const ctx = { cache: counted, ops: new Ops(wasm), model: { headDim: d, kvHeads: 1 } } as unknown as PolicyContext
    const bounds = new PageBounds(wasm.heap, 16)
    const r = rng(3)
    let n = 0
    const append = (t: number) => {
      cache.append(0, normals(r, t * d), normals(r, t * d), Int32Array.from({ length: t }, (_, i) => n + i))
      n += t
    }
    try {
      append(100)
      boundsOf(ctx, bounds, 0, 0)
      expect(reads).toBe(1)
      for (const t of [1, 1, 11, 16, 3, 1, 40]) {
        append(t)
        const a = boundsOf(ctx, bounds, 0, 0)
        const fresh = new PageBounds(wasm.heap, 16)
        const b = boundsOf(ctx, fresh, 0, 0)
        fresh.free()
        expect(bits(a)).toEqual(bits(b))
      }
      // one read per fresh rebuild above, none by the incremental bounds
      expect(reads).toBe(1 + 7)
    } finally {
      bounds.free()
      cache.dispose()
    }
  })
})

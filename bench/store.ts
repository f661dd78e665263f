// The KV store's costs, each against its yardstick measured in the same run (machines are noisy):
// - evicting 1 token per KV head per step (order-free `evictions`) at 4k, 16k and 64k tokens of the
//   fixture's cache shape, against a decode step at 4k, and the order-preserving `keep` path it replaces;
// - a one-shot compaction to 25% at 4k: bytes moved per second against memory.copy's, and what bounds
//   it (the kernel over one contiguous stream, against memory.copy of the kept bytes and of them all);
// - reading every key of a 16k KIVI-2 cache back into the arena: readKeysInto against fresh arrays;
// - the decode step through the synchronous arena path against stepAsync (the asynchronous seam), and
//   with every page in the host tier; dense decode against selected decode over every token;
// - `h2o:budget=0.5,every=1` decode step against the full cache's, on a 3000-token prompt.
//   npm run build && node dist/bench/store.js [section ...]   (sections: eviction oneshot bound readback seam h2o; default all)
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { randn } from './random.js'
import type { CompactCall } from '../src/backend/backend.js'

const MODEL = 'models/fixture-14m'
const line = (what: string, value: string, extra = ''): void => console.log(`${what.padEnd(60)} ${value.padStart(14)}   ${extra}`)

/** a cache of the model's shape holding n random tokens in every head */
export function filledCache(model: LlamaModel, n: number): PagedKVCache {
  const cache = model.newCache()
  const { kvHeads, headDim } = cache.options
  for (let l = 0; l < cache.options.layers; l++) {
    for (let t0 = 0; t0 < n; t0 += 1024) {
      const T = Math.min(1024, n - t0)
      const k = randn(T * kvHeads * headDim, l * 7919 + t0)
      cache.append(l, k, k, Int32Array.from({ length: T }, (_, i) => t0 + i))
    }
  }
  return cache
}

/** one random slot a head, as a decision of either kind */
function oneEach(cache: PagedKVCache, step: number, kind: 'evict' | 'keep') {
  const { layers, kvHeads } = cache.options
  const heads = []
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < kvHeads; h++) {
      const n = cache.length(l, h)
      const slot = ((step + 1) * 2654435761 + l * 97 + h * 13) % n
      heads.push({ layer: l, head: h, slot, n })
    }
  }
  if (kind === 'evict') return { heads: [], evictions: heads.map((x) => ({ layer: x.layer, head: x.head, evict: Int32Array.of(x.slot) })) }
  return { heads: heads.map((x) => ({ layer: x.layer, head: x.head, keep: Int32Array.from({ length: x.n - 1 }, (_, i) => (i < x.slot ? i : i + 1)) })) }
}

/** fastest ms of `rounds` eviction steps (each followed by an untimed one-token append to hold n) */
function evictionStepMs(model: LlamaModel, cache: PagedKVCache, kind: 'evict' | 'keep', rounds: number): number {
  const { layers, kvHeads, headDim } = cache.options
  const k = randn(kvHeads * headDim, 5)
  let best = Infinity
  for (let s = 0; s < rounds; s++) {
    const d = oneEach(cache, s, kind)
    const t0 = performance.now()
    cache.apply(d)
    best = Math.min(best, performance.now() - t0)
    for (let l = 0; l < layers; l++) cache.append(l, k, k, Int32Array.of(1e6 + s))
  }
  return best
}

function decodeStepMs(model: LlamaModel, cache: PagedKVCache, rounds: number): number {
  const logits = new Float32Array(model.config.vocab)
  let best = Infinity
  for (let s = 0; s < rounds; s++) {
    const pos = cache.length(0, 0)
    const t0 = performance.now()
    model.forward.step([5 + s], Int32Array.of(pos), cache, { decode: true, logits: 'last', out: logits })
    best = Math.min(best, performance.now() - t0)
  }
  return best
}

function eviction(model: LlamaModel): void {
  console.log('\nevicting 1 token per KV head per step (8 layers x 2 KV heads x 64, float32), fastest of 30 steps')
  const at: Record<number, number> = {}
  for (const n of [4096, 16384, 65536]) {
    const cache = filledCache(model, n)
    at[n] = evictionStepMs(model, cache, 'evict', 30)
    line(`order-free eviction, ${n / 1024}k tokens`, `${(at[n] * 1000).toFixed(1)} us`)
    if (n === 4096) {
      const keep = evictionStepMs(model, cache, 'keep', 10)
      line('order-preserving keep list (the path it replaces), 4k tokens', `${keep.toFixed(3)} ms`, `eviction is ${(keep / at[n]).toFixed(0)}x faster`)
      const step = decodeStepMs(model, cache, 10)
      line('decode step, 4k tokens (yardstick)', `${step.toFixed(2)} ms`, `eviction = ${(at[n] / step).toFixed(4)} of a step (target < 0.1)`)
    }
    cache.dispose()
  }
  line('eviction 64k / 4k (flat in n: ~1)', `${(at[65536] / at[4096]).toFixed(2)}x`, `16k / 4k ${(at[16384] / at[4096]).toFixed(2)}x`)
}

/** the one-shot decision of round `round`: a random quarter of each head's n slots kept, ascending */
export function oneShotHeads(cache: PagedKVCache, n: number, round: number): { layer: number; head: number; keep: Int32Array }[] {
  const { layers, kvHeads } = cache.options
  const heads = []
  for (let l = 0; l < layers; l++) {
    for (let h = 0; h < kvHeads; h++) {
      const score = randn(n, round * 131 + l * 17 + h)
      const keep = Int32Array.from(Array.from(score.keys()).sort((a, b) => score[b] - score[a]).slice(0, n / 4)).sort()
      heads.push({ layer: l, head: h, keep })
    }
  }
  return heads
}

function oneShot(model: LlamaModel): void {
  const threads = model.backend.threads ?? 1
  const batch = model.backend.compactRowsKVBatch
  console.log(`\none-shot compaction to 25% at 4k tokens (random 25% of each head kept, order kept), fastest of 8 rounds; ${threads} kernel thread(s) (KVKIT_THREADS), memory.copy on one`)
  const n = 4096
  const heap = model.backend.heap
  let best = Infinity
  let kernel = Infinity
  let twoCalls = Infinity
  let pooled = Infinity
  let pages = Infinity
  let copy = Infinity
  let bytes = 0
  for (let round = 0; round < 8; round++) {
    const cache = filledCache(model, n)
    const { headDim } = cache.options
    const heads = oneShotHeads(cache, n, round)
    // the kernel alone first, on twin caches (every kept row of every stream, keys and values): on one
    // thread as the store runs it there (compactRowsKV, one pass a head), as two compactRows calls a
    // head (before ABI 1.6), and as the store runs it on the worker pool (compactRowsKVBatch, heads at once)
    // and, the pool's bound, the same number of rows per head moved as whole pages (each head keeps its
    // last quarter: page-aligned runs, each one memory.copy) on the same threads
    const lastQuarter = Int32Array.from({ length: n / 4 }, (_, i) => n - n / 4 + i)
    for (const mode of ['one pass', 'two calls', 'batch', 'whole pages'] as const) {
      if ((mode === 'batch' || mode === 'whole pages') && !batch) continue
      const twin = filledCache(model, n)
      const keepPtr = heap.alloc(heads.length * n * 4, 64)
      const tables = heads.map((hd) => twin.segments(hd.layer, hd.head)[0])
      const tk = performance.now()
      const pooledMode = mode === 'batch' || mode === 'whole pages'
      if (pooledMode) {
        const calls = heads.map((hd, i): CompactCall => {
          const keep = mode === 'batch' ? hd.keep : lastQuarter
          const at = keepPtr + i * n * 4
          heap.I32.set(keep, at >> 2)
          let first = 0
          while (keep[first] === first) first++
          const t = tables[i]
          return { kTable: t.kTable, vTable: t.vTable, pageTokens: t.pageTokens, kRowBytes: headDim * 4, vRowBytes: headDim * 4, keep: at, nKeep: keep.length, moved: keep.length - first }
        })
        batch!(calls)
      }
      for (let i = 0; i < heads.length && !pooledMode; i++) {
        const t = tables[i]
        heap.I32.set(heads[i].keep, keepPtr >> 2)
        if (mode === 'one pass') model.backend.compactRowsKV(t.kTable, t.vTable, t.pageTokens, headDim * 4, headDim * 4, keepPtr, heads[i].keep.length)
        else {
          model.backend.compactRows(t.kTable, t.pageTokens, headDim * 4, keepPtr, heads[i].keep.length)
          model.backend.compactRows(t.vTable, t.pageTokens, headDim * 4, keepPtr, heads[i].keep.length)
        }
      }
      const ms = performance.now() - tk
      if (mode === 'one pass') kernel = Math.min(kernel, ms)
      else if (mode === 'two calls') twoCalls = Math.min(twoCalls, ms)
      else if (mode === 'batch') pooled = Math.min(pooled, ms)
      else pages = Math.min(pages, ms)
      heap.release(keepPtr)
      twin.dispose()
    }
    const moved0 = cache.store.rowsMoved
    const t0 = performance.now()
    cache.apply({ heads })
    best = Math.min(best, performance.now() - t0)
    bytes = (cache.store.rowsMoved - moved0) * 2 * headDim * 4
    cache.dispose()
    // the yardstick in the same state: memory.copy of as many bytes from a buffer just written, as the cache was
    const src = heap.alloc(bytes, 64)
    const dst = heap.alloc(bytes, 64)
    heap.F32.set(randn(bytes / 4, round), src >> 2)
    heap.U8.fill(0, dst, dst + bytes)
    const t1 = performance.now()
    model.backend.copyBytes(dst, src, bytes)
    copy = Math.min(copy, performance.now() - t1)
    heap.release(dst)
    heap.release(src)
  }
  const gbs = (ms: number) => bytes / ms / 1e6
  line(`compaction (${(bytes / 2 ** 20).toFixed(1)} MiB of rows moved, kernel + bookkeeping)`, `${best.toFixed(3)} ms`, `${gbs(best).toFixed(1)} GB/s`)
  const inApply = batch ? pooled : kernel
  line('the kernel alone on one thread (compactRowsKV, 16 heads x one pass)', `${kernel.toFixed(3)} ms`, `${gbs(kernel).toFixed(1)} GB/s`)
  if (batch) line(`the kernel alone on ${threads} threads (compactRowsKVBatch, as apply() runs it here)`, `${pooled.toFixed(3)} ms`, `${gbs(pooled).toFixed(1)} GB/s; ${(kernel / pooled).toFixed(2)}x one thread`)
  line('bookkeeping (compaction less the kernel as apply() runs it)', `${(best - inApply).toFixed(3)} ms`)
  line('the kernel as two compactRows a head (keys, then values)', `${twoCalls.toFixed(3)} ms`, `${gbs(twoCalls).toFixed(1)} GB/s; one pass is ${(twoCalls / kernel).toFixed(2)}x faster`)
  line('memory.copy of the same bytes (yardstick)', `${copy.toFixed(3)} ms`, `${gbs(copy).toFixed(1)} GB/s`)
  line('kernel alone on one thread / memory.copy speed', (copy / kernel).toFixed(2))
  if (batch) {
    line(`kernel alone on ${threads} threads / memory.copy speed (one thread)`, (copy / pooled).toFixed(2))
    line(`the same rows a head as whole pages on ${threads} threads (the pool's bound)`, `${pages.toFixed(3)} ms`, `${gbs(pages).toFixed(1)} GB/s; random rows reach ${(pages / pooled).toFixed(2)} of it`)
  }
  line(`compaction speed on ${threads} thread(s) / memory.copy speed on one (target >= 0.5)`, (copy / best).toFixed(2))
}

/**
 * What bounds the one-shot figure: the same kernel over one stream laid out contiguously (no page
 * interleaving), keeping a random quarter or exactly every 4th row, against memory.copy of the kept bytes
 * and of the whole 32 MiB the kept rows are scattered over (every cache line of it, the most a gather can
 * cost when the hardware prefetchers fetch the rows in between).
 */
function gatherBound(model: LlamaModel): void {
  console.log('\nwhat bounds it: compactRows over one contiguous stream of 131072 rows x 256 bytes (32 MiB), fastest of 8 rounds')
  const be = model.backend
  const heap = be.heap
  const rows = 131072
  const rowBytes = 256
  const pt = 64
  const total = rows * rowBytes
  const data = heap.alloc(total, 4096)
  const table = heap.alloc((rows / pt) * 4, 64)
  heap.I32.set(Int32Array.from({ length: rows / pt }, (_, p) => data + p * pt * rowBytes), table >> 2)
  const score = randn(rows, 77)
  const keeps = {
    'random quarter': Int32Array.from(Array.from(score.keys()).sort((a, b) => score[b] - score[a]).slice(0, rows / 4)).sort(),
    'every 4th row': Int32Array.from({ length: rows / 4 }, (_, i) => 4 * i + 1),
  }
  const keepPtr = heap.alloc(rows, 64)
  const dst = heap.alloc(total, 4096)
  const fill = randn(total / 4, 3)
  const best: Record<string, number> = {}
  const time = (name: string, f: () => void) => {
    heap.F32.set(fill, data >> 2)
    const t0 = performance.now()
    f()
    best[name] = Math.min(best[name] ?? Infinity, performance.now() - t0)
  }
  for (let round = 0; round < 8; round++) {
    for (const [name, keep] of Object.entries(keeps)) {
      heap.I32.set(keep, keepPtr >> 2)
      time(name, () => be.compactRows(table, pt, rowBytes, keepPtr, keep.length))
    }
    time('copy kept', () => be.copyBytes(dst, data, total / 4))
    time('copy all', () => be.copyBytes(dst, data, total))
  }
  for (const p of [data, table, keepPtr, dst]) heap.release(p)
  const kept = best['copy kept']
  line('memory.copy of the kept 8 MiB (yardstick)', `${kept.toFixed(3)} ms`)
  for (const name of Object.keys(keeps)) line(`compactRows, ${name}`, `${best[name].toFixed(3)} ms`, `${(kept / best[name]).toFixed(2)} of memory.copy speed`)
  line('memory.copy of all 32 MiB the kept rows lie in', `${best['copy all'].toFixed(3)} ms`, `${(kept / best['copy all']).toFixed(2)} of memory.copy speed on the kept bytes`)
}

/**
 * Reading every key of a 16k-token KIVI-2 cache back as floats (what Quest's page bounds and TokenSelect's
 * scoring do over packed heads): into a fresh array then copied into the arena (readKeys + f32From, the
 * path before readKeysInto), against readKeysInto (straight into arena memory), and memory.copy of the
 * float bytes that come out (the yardstick); fastest of 5 rounds, alternating.
 */
function readBack(model: LlamaModel): void {
  const n = 16384
  console.log(`\nreading back every key of a ${n}-token cache packed by KIVI-2 (the 128 newest tokens float32), fastest of 5 rounds`)
  const cache = filledCache(model, n)
  const { layers, kvHeads, headDim: d } = cache.options
  const heads: { layer: number; head: number }[] = []
  for (let l = 0; l < layers; l++) for (let h = 0; h < kvHeads; h++) heads.push({ layer: l, head: h })
  cache.apply({ heads: [], quantize: heads.map((x) => ({ ...x, upto: Math.floor((n - 128) / 32) * 32, keys: 'int2' as const, values: 'int2' as const })) })
  const heap = model.backend.heap
  const dst = heap.allocF32(n * d)
  const src = heap.allocF32(n * d)
  const best = { array: Infinity, into: Infinity, copy: Infinity }
  const time = (k: keyof typeof best, f: () => void) => {
    const t0 = performance.now()
    f()
    best[k] = Math.min(best[k], performance.now() - t0)
  }
  for (let round = 0; round < 5; round++) {
    time('array', () => {
      for (const { layer, head } of heads) heap.f32From(cache.readKeys(layer, head)).free()
    })
    time('into', () => {
      for (const { layer, head } of heads) cache.readKeysInto(layer, head, 0, n, dst.ptr)
    })
    time('copy', () => {
      for (let i = 0; i < heads.length; i++) model.backend.copyBytes(dst.ptr, src.ptr, n * d * 4)
    })
  }
  dst.free()
  src.free()
  cache.dispose()
  const mib = (heads.length * n * d * 4) / 2 ** 20
  line(`memory.copy of the ${mib.toFixed(0)} MiB of floats (yardstick)`, `${best.copy.toFixed(2)} ms`)
  line('readKeys into fresh arrays, then into the arena', `${best.array.toFixed(2)} ms`, `${(best.copy / best.array).toFixed(3)} of memory.copy speed`)
  line('readKeysInto, straight into the arena', `${best.into.toFixed(2)} ms`, `${(best.copy / best.into).toFixed(3)} of memory.copy speed; ${(best.array / best.into).toFixed(1)}x the fresh arrays`)
}

/** the synchronous arena path against the awaited one, and the dense decode kernel against the one it replaced */
async function seam(model: LlamaModel): Promise<void> {
  console.log('\nthe asynchronous seam, 4k tokens, fastest of 12 alternating steps')
  const cache = filledCache(model, 4096)
  const logits = new Float32Array(model.config.vocab)
  const host = cache.fork()
  host.moveTo('host')
  let sync = Infinity
  let awaited = Infinity
  let fromHost = Infinity
  for (let s = 0; s < 12; s++) {
    const pos = 4096 + s
    const t0 = performance.now()
    model.forward.step([5], Int32Array.of(pos), cache, { decode: true, logits: 'last', out: logits })
    const t1 = performance.now()
    cache.rollback(4096)
    await model.forward.stepAsync([5], Int32Array.of(pos), cache, { decode: true, logits: 'last', out: logits })
    const t2 = performance.now()
    cache.rollback(4096)
    await model.forward.stepAsync([5], Int32Array.of(pos), host, { decode: true, logits: 'last', out: logits })
    const t3 = performance.now()
    host.rollback(4096)
    sync = Math.min(sync, t1 - t0)
    awaited = Math.min(awaited, t2 - t1)
    fromHost = Math.min(fromHost, t3 - t2)
  }
  line('decode step, synchronous (arena)', `${sync.toFixed(2)} ms`)
  line('decode step, stepAsync over the same arena cache', `${awaited.toFixed(2)} ms`, `${(awaited / sync).toFixed(2)}x the synchronous step`)
  line('decode step, stepAsync with every page in the host tier', `${fromHost.toFixed(2)} ms`, `${(fromHost / sync).toFixed(2)}x (fetches all 4k rows a head)`)
  // dense decode is attendCausal with T = 1, as before the store; selected decode its gathered twin
  const be = model.backend
  const heap = be.heap
  const { headDim: d, group } = model.config
  const v = cache.view(0, 0)
  const q = heap.alloc(group * d * 4, 64)
  const out = heap.alloc(group * d * 4, 64)
  const lse = heap.alloc(group * 4, 64)
  const scratch = heap.alloc(8192 * 4, 64)
  const every = heap.alloc(v.n * 4, 64)
  heap.I32.set(Int32Array.from({ length: v.n }, (_, i) => i), every >> 2)
  heap.F32.set(randn(group * d, 9), q >> 2)
  let dense = Infinity
  let gathered = Infinity
  let attend = Infinity
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now()
    be.attendCausal(q, group * d, group, 1, d, d, v.kTable, v.vTable, v.pageTokens, v.n, v.n, 0.125, out, group * d, lse, scratch)
    const t1 = performance.now()
    be.attendGathered(q, group, d, d, v.kTable, v.vTable, v.pageTokens, every, v.n, 0.125, out, lse, scratch)
    const t2 = performance.now()
    be.attend(q, group, d, v.kTable, v.vTable, v.pageTokens, v.n, every, v.n, 0.125, out, lse)
    const t3 = performance.now()
    dense = Math.min(dense, t1 - t0)
    gathered = Math.min(gathered, t2 - t1)
    attend = Math.min(attend, t3 - t2)
  }
  for (const p of [q, out, lse, scratch, every]) heap.release(p)
  line(`dense decode over one head (${group} query heads), attendCausal`, `${(dense * 1000).toFixed(1)} us`)
  line('the same through attendGathered over every token', `${(gathered * 1000).toFixed(1)} us`, `${(gathered / dense).toFixed(2)}x dense (selected decode now)`)
  line('the same through attend over every token', `${(attend * 1000).toFixed(1)} us`, `${(attend / dense).toFixed(2)}x dense (selected decode before)`)
  host.dispose()
  cache.dispose()
}

async function h2oStep(model: LlamaModel): Promise<void> {
  console.log('\nh2o:budget=0.5,every=1 against the full cache, 3000-token prompt, 32 new tokens')
  const ids = [0, ...Array.from({ length: 2999 }, (_, i) => 2 + ((i * 7919) % 4000))]
  const ms: Record<string, number> = {}
  let rows = 0
  let steps = 0
  for (const spec of ['full', 'h2o:budget=0.5,every=1']) {
    const policy = createPolicy(spec, model.config) ?? undefined
    const { stats } = await model.generate(ids, { maxNewTokens: 32, policy: policy && countRowsMoved(policy, (r) => ((rows += r), steps++)) }).result
    ms[spec] = stats.decodeMsPerToken
    line(`${spec} decode step`, `${stats.decodeMsPerToken.toFixed(2)} ms`)
  }
  line('h2o every=1 step / full step (target <= 2)', `${(ms['h2o:budget=0.5,every=1'] / ms.full).toFixed(2)}x`)
  line('rows the store moved per h2o decode step (16 heads, 1 token each)', (rows / Math.max(1, steps)).toFixed(1), 'order-free evictions: O(b), not O(n)')
}

/** the policy, reporting the rows the store moved for each decode-time decision it applied */
function countRowsMoved(policy: Policy, onStep: (rows: number) => void): Policy {
  return {
    ...policy,
    start() {
      const s = policy.start()
      let before = 0
      return {
        ...s,
        onPrefillEnd: s.onPrefillEnd && ((ctx) => s.onPrefillEnd!(ctx)),
        onDecodeStep: s.onDecodeStep && ((ctx) => {
          before = (ctx.cache as PagedKVCache).store.rowsMoved
          return s.onDecodeStep!(ctx)
        }),
        onApplied(d, ctx) {
          s.onApplied?.(d, ctx)
          if (ctx.step > 0) onStep((ctx.cache as PagedKVCache).store.rowsMoved - before)
        },
      }
    },
  }
}

const SECTIONS: Record<string, (model: LlamaModel) => void | Promise<void>> = { eviction, oneshot: oneShot, bound: gatherBound, readback: readBack, seam, h2o: h2oStep }

/** runs the named sections (all by default), so one figure can be measured again without the rest */
export async function run(only: string[] = []): Promise<void> {
  const unknown = only.filter((s) => !(s in SECTIONS))
  if (unknown.length) throw new Error(`store bench: unknown section ${unknown.join(', ')}; the sections are ${Object.keys(SECTIONS).join(', ')}`)
  const model = (await loadModel(MODEL, { backend: 'wasm' })) as LlamaModel
  console.log(`store bench on ${MODEL}, kernels ${model.kernels}`)
  for (const [name, section] of Object.entries(SECTIONS)) if (!only.length || only.includes(name)) await section(model)
  model.dispose()
}

if (import.meta.url === `file://${process.argv[1]}`) await run(process.argv.slice(2))

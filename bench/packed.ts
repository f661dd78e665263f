// Packed KV pages: scoring on packed keys against float32 scoring, in the same run, and the bytes per
// token per layer of each packed scheme against float16, from the cache's own accounting.
//   node dist/bench/packed.js [--build simd|relaxed|auto] [--threads N] [--json FILE] [--scoring] [--group 32|64|128]
//   (Node 20: node --experimental-wasm-relaxed-simd dist/bench/packed.js --build relaxed)
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'
import { packedIntScratch } from '../src/backend/backend.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import type { KVDtype, PageFormat } from '../src/cache/formats.js'
import type { HeadQuantization } from '../src/cache/types.js'
import { measure } from './kernels.js'

/** a cache of `layers` x `kvHeads` streams of n random tokens of d channels; `format` packs all but `residual` */
function cacheOf(b: CreatedBackend, n: number, d: number, format: PageFormat | null, residual = 0, layers = 1, kvHeads = 1, extra: Partial<HeadQuantization> = {}, pageTokens = 64, kvDtype: KVDtype = 'float32'): PagedKVCache {
  const cache = new PagedKVCache(b, { layers, kvHeads, headDim: d, pageTokens, kvDtype })
  let s = 12345
  const rand = () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 31 - 1)
  for (let l = 0; l < layers; l++) {
    for (let at = 0; at < n; at += 4096) {
      const T = Math.min(4096, n - at)
      const k = Float32Array.from({ length: T * d * kvHeads }, rand)
      const v = Float32Array.from({ length: T * d * kvHeads }, rand)
      cache.append(l, k, v, Int32Array.from({ length: T }, (_, i) => at + i))
    }
  }
  const group = extra.group ?? 32
  const upto = Math.floor(Math.max(0, n - residual) / group) * group
  const heads = Array.from({ length: layers * kvHeads }, (_, i) => ({ layer: Math.floor(i / kvHeads), head: i % kvHeads, upto, keys: format!, values: format!, ...extra }))
  if (format && upto > 0) for (const h of heads) cache.apply({ heads: [], quantize: [h] })
  return cache
}

/** a scoring task's name: float32, the exact fused kernel on intN keys, or the integer kernel on them */
type Scorer = { name: string; bits: number; integer?: boolean }
const SCORERS: Scorer[] = [
  { name: 'float32', bits: 0 },
  { name: 'int4 exact', bits: 4 },
  { name: 'int4 integer', bits: 4, integer: true },
  { name: 'int2 exact', bits: 2 },
  { name: 'int2 integer', bits: 2, integer: true },
]
const FORMAT: Record<number, PageFormat | null> = { 0: null, 8: 'int8', 4: 'int4', 2: 'int2', 1: 'int1' }

/** pages of 64 tokens, or of the key group where it is longer (a page holds whole groups) */
const pageFor = (group: number) => Math.max(64, group)
/** the packing of a packed scorer's cache: key groups of `group` tokens (KIVI's group_size) */
const grouped = (group: number): Partial<HeadQuantization> => (group === 32 ? {} : { group })

/**
 * one decode step's scoring over every segment of `segs` with scorer s (q: qHeads rows of d floats);
 * packed keys in groups of `group` tokens, pages of pageFor(group)
 */
function scoreTask(b: CreatedBackend, s: Scorer, segs: { kTable: number }[], n: number, d: number, qHeads: number, q: number, out: number, scratch: number, group = 32): () => void {
  const pt = pageFor(group)
  if (s.bits === 0) return () => { for (const g of segs) b.scoreKeys(q, qHeads, d, g.kTable, pt, n, 0.125, out) }
  if (s.integer) return () => { for (const g of segs) b.scorePackedKeysInt!(q, qHeads, d, g.kTable, pt, n, s.bits, 0.125, out, scratch, group) }
  return () => { for (const g of segs) b.scorePackedKeys!(q, qHeads, d, g.kTable, pt, n, s.bits, 0, 0.125, out, scratch, group) }
}

/**
 * Keys per second of one decode step's scoring over every (layer, KV head) of a model-shaped cache
 * (`layers` x `kvHeads` streams of n keys, `qHeads` query heads per KV head): float32 pages against
 * packed ones (the exact fused kernel and the integer one), in the same run. A whole model's keys do not
 * fit in the CPU caches, as in decoding. Returns keys/s by scorer.
 */
export async function scoringSpeed(b: CreatedBackend, n: number, d: number, qHeads: number, layers: number, kvHeads: number, scorers = SCORERS, group = 32): Promise<Record<string, number>> {
  const heap = b.heap
  const caches = new Map<number, PagedKVCache>()
  for (const s of scorers) if (!caches.has(s.bits)) caches.set(s.bits, cacheOf(b, n, d, FORMAT[s.bits], 0, layers, kvHeads, grouped(group), pageFor(group)))
  const q = heap.allocF32(qHeads * d)
  q.view.forEach((_, i) => (q.view[i] = Math.sin(i)))
  const out = heap.allocF32(qHeads * n)
  const scratch = heap.allocF32(packedIntScratch(qHeads, d, group))
  const tasks: Record<string, () => void> = {}
  for (const s of scorers) {
    const c = caches.get(s.bits)!
    const segs = Array.from({ length: layers * kvHeads }, (_, i) => c.segments(Math.floor(i / kvHeads), i % kvHeads)[0])
    tasks[s.name] = scoreTask(b, s, segs, n, d, qHeads, q.ptr, out.ptr, scratch.ptr, group)
  }
  const t = await measure(tasks, 400, 5)
  const keys = n * layers * kvHeads
  for (const c of caches.values()) c.dispose()
  for (const x of [q, out, scratch]) x.free()
  return Object.fromEntries(scorers.map((s) => [s.name, (keys / t.ms[s.name]) * 1e3]))
}

/**
 * Scoring one cache-resident stream of n keys (3 query heads): the kernels' arithmetic without memory
 * traffic, every scorer in the same run, each the best of 200 interleaved rounds (the least disturbed by
 * a shared machine's other work). Returns keys/s by scorer, and how far the integer scores are from the
 * exact ones (largest difference in % of the exact scores' range).
 */
export function residentScoring(b: CreatedBackend, n: number, d: number, scorers = SCORERS, group = 32): { rates: Record<string, number>; agree: Record<string, number> } {
  const qHeads = 3
  const caches = new Map<number, PagedKVCache>()
  for (const s of scorers) if (!caches.has(s.bits)) caches.set(s.bits, cacheOf(b, n, d, FORMAT[s.bits], 0, 1, 1, grouped(group), pageFor(group)))
  const q = b.heap.allocF32(qHeads * d)
  q.view.forEach((_, i) => (q.view[i] = Math.sin(i)))
  const out = b.heap.allocF32(qHeads * n)
  const scratch = b.heap.allocF32(packedIntScratch(qHeads, d, group))
  const tasks = scorers.map((s) => scoreTask(b, s, [caches.get(s.bits)!.segments(0, 0)[0]], n, d, qHeads, q.ptr, out.ptr, scratch.ptr, group))
  const best = scorers.map(() => Infinity)
  for (let r = 0; r < 200; r++) {
    tasks.forEach((t, i) => {
      const t0 = performance.now()
      for (let j = 0; j < 4; j++) t()
      best[i] = Math.min(best[i], (performance.now() - t0) / 4)
    })
  }
  // the integer scores against the exact ones, so a fast wrong kernel (an engine's relaxed-SIMD lowering)
  // cannot pass for a speed-up: their largest difference in % of the exact scores' range
  const agree: Record<string, number> = {}
  for (const bits of [4, 2]) {
    const [exact, integer] = [false, true].map((int) => {
      scoreTask(b, { name: '', bits, integer: int }, [caches.get(bits)!.segments(0, 0)[0]], n, d, qHeads, q.ptr, out.ptr, scratch.ptr, group)()
      return out.view.slice()
    })
    const range = Math.max(...exact) - Math.min(...exact)
    agree[`int${bits}`] = (100 * integer.reduce((m, x, i) => Math.max(m, Math.abs(x - exact[i])), 0)) / range
  }
  for (const c of caches.values()) c.dispose()
  for (const x of [q, out, scratch]) x.free()
  return { rates: Object.fromEntries(scorers.map((s, i) => [s.name, (n / best[i]) * 1e3])), agree }
}

/** one line per scorer: keys/s and the ratio to float32's, with the issue's target where it has one */
function printRates(title: string, rates: Record<string, number>): void {
  console.log(title)
  const targets: Record<string, string> = { 'int4 integer': '>= 2x', 'int2 integer': '>= 3x' }
  for (const [name, r] of Object.entries(rates)) {
    const x = r / rates.float32
    console.log(`  ${name.padEnd(13)} ${(r / 1e6).toFixed(1).padStart(7)} M keys/s  ${x.toFixed(2)}x float32${targets[name] ? ` (target ${targets[name]})` : ''}`)
  }
}

/** bytes per token per layer (keys and values of every KV head, metadata included) of a scheme at n tokens */
export function bytesPerToken(b: CreatedBackend, n: number, d: number, format: PageFormat | null, residual: number): number {
  const c = cacheOf(b, n, d, format, residual)
  const bytes = c.bytes().total / n
  c.dispose()
  return bytes
}

/** VidKV's default pages: 32 of 64 key channels int2 (1.5 bits), the rest int1 signs of the real DFT; ternary values */
const VIDKV: Partial<HeadQuantization> = { values: 'ternary', keyHiChannels: Int32Array.from({ length: 32 }, (_, i) => 2 * i) }

type Packing = Pick<HeadQuantization, 'keys' | 'values' | 'keyHiChannels' | 'group'>

/**
 * Bytes per token per layer and KV head of a mixed-precision scheme: the `share` of the rows before the
 * window packed as `hi`, the rest as `lo` (MiKV's important tokens, VidKV's salient ones); the newest
 * `residual` rows in `kvDtype` (pages of 64 tokens, or of the key group where it is longer)
 */
export function mixedBytesPerToken(b: CreatedBackend, n: number, d: number, hi: Packing, lo: Packing, share: number, residual: number, kvDtype: KVDtype = 'float32'): number {
  const c = cacheOf(b, n, d, null, 0, 1, 1, {}, Math.max(64, lo.group ?? 0), kvDtype)
  const old = Math.max(0, n - residual)
  const nHi = Math.round(share * old)
  c.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto: old - nHi, ...lo }, { layer: 0, head: 0, upto: old, ...hi }] })
  const bytes = c.bytes().total / n
  c.dispose()
  return bytes
}

/**
 * Options: --build simd|relaxed|auto (which wasm build: 'auto' lets the loader choose; relaxed needs
 * --experimental-wasm-relaxed-simd on Node 20), --threads N (each scoring call split by keys across a
 * worker pool of N threads: src/backend/threads/scoring.ts), --json FILE (the scoring figures), --scoring
 * (scoring only).
 */
export async function run(argv = process.argv.slice(2)): Promise<void> {
  const arg = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined }
  const want = arg('--build') ?? 'auto'
  if (!['simd', 'relaxed', 'auto'].includes(want)) throw new RangeError(`--build must be simd, relaxed or auto, got ${want}`)
  const threads = Number(arg('--threads') ?? 1)
  if (!(Number.isInteger(threads) && threads >= 1)) throw new RangeError(`--threads must be a positive integer, got ${arg('--threads')}`)
  // with threads, each call's keys split across the worker pool (src/backend/threads/scoring.ts)
  const b = await createBackend('wasm', { relaxed: want === 'auto' ? 'auto' : want === 'relaxed', threads, spawnWorker: nodeWorkerSpawner })
  const build = (b as { build?: string }).build ?? 'simd'
  if (want !== 'auto' && build !== want) throw new Error(`--build ${want}: the runtime loaded the ${build} build (relaxed SIMD needs --experimental-wasm-relaxed-simd on Node 20)`)
  console.log(`kernels: wasm (${build} build), ${b.threads ?? 1} thread(s), node ${process.version}${'Deno' in globalThis ? ' (Deno)' : 'Bun' in globalThis ? ' (Bun)' : ''}, ${new Date().toISOString()}`)
  // key groups of 32 tokens (KIVI's default), or 64 or 128 (its group_size): packed pages only
  const group = Number(arg('--group') ?? 32)
  if (![32, 64, 128].includes(group)) throw new RangeError(`--group must be 32, 64 or 128, got ${arg('--group')}`)
  const g = group === 32 ? '' : `, key groups of ${group}`
  // the fixture model's shape (8 layers x 2 KV heads of 64, 3 query heads each) at 32k tokens
  const whole = await scoringSpeed(b, 32768, 64, 3, 8, 2, SCORERS, group)
  printRates(`score 8 layers x 2 KV heads x 32768 keys x 64 ch, 3 query heads each${g}:`, whole)
  const { rates: resident, agree } = residentScoring(b, 4096, 64, SCORERS, group)
  printRates(`score one resident stream of 4096 keys x 64 ch, 3 query heads${g}:`, resident)
  console.log(`integer against exact scores, largest difference: int4 ${agree.int4.toPrecision(2)}%, int2 ${agree.int2.toPrecision(2)}% of their range`)
  const dotAdd = b.packedIntDotAdd?.() === 1
  console.log(`integer kernel's dot products: ${dotAdd ? 'accumulating (i32x4.relaxed_dot_i8x16_i7x16_add_s)' : build === 'relaxed' ? 'i16x8.relaxed_dot_i8x16_i7x16_s, widened (this engine gets the accumulating one wrong)' : 'i32x4.dot_i16x8_s'}`)
  for (const [k, x] of Object.entries(agree)) if (!(x < 5)) throw new Error(`the integer ${k} scores are ${x}% of the range off the exact ones: a wrong kernel, not a fast one`)
  const json = arg('--json')
  if (json) writeFileSync(json, JSON.stringify({ build, threads: b.threads ?? 1, node: process.version, date: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg(), group, wholeCache32k: whole, resident4096: resident, integerOffPercentOfRange: agree, dotAdd }, null, 1))
  if (argv.includes('--scoring')) return b.close?.()
  console.log('\nbytes per token per layer and KV head (head_dim 64), from cache.bytes(); float16 = 256')
  for (const n of [4096, 32768]) {
    for (const [name, format, residual] of [['KIVI-4 (R=128)', 'int4', 128], ['KIVI-2 (R=128)', 'int2', 128], ['int4 pages alone', 'int4', 0], ['int2 pages alone', 'int2', 0]] as const) {
      const bpt = bytesPerToken(b, n, 64, format, residual)
      console.log(`  ${String(n).padStart(6)} tokens  ${name.padEnd(18)} ${bpt.toFixed(1).padStart(7)} B   ${(256 / bpt).toFixed(2)}x smaller than float16`)
    }
    const m = mixedBytesPerToken(b, n, 64, { keys: 'int8', values: 'int8' }, { keys: 'int2', values: 'int2' }, 0.2, 128)
    console.log(`  ${String(n).padStart(6)} tokens  ${'MiKV 8/2, 20%'.padEnd(18)} ${m.toFixed(1).padStart(7)} B   ${(256 / m).toFixed(2)}x smaller than float16`)
    const { keyHiChannels } = VIDKV
    const kivi2 = bytesPerToken(b, n, 64, 'int2', 128)
    // VidKV 1.5-bit keys, ternary values, 20% salient rows with int2 values: the float tail is R = 128 at
    // prefill end and grows to R + group - 1 while decoding before the next group packs
    for (const [group, kvDtype] of [[32, 'float32'], [64, 'float32'], [128, 'float32'], [128, 'float16']] as const) {
      const tails = [128, 128 + group - 1]
      const [atPrefill, worst] = tails.map((tail) => mixedBytesPerToken(b, n, 64, { keys: 'int2+sign', values: 'int2', keyHiChannels, group }, { keys: 'int2+sign', values: 'ternary', keyHiChannels, group }, 0.2, tail, kvDtype))
      const name = `VidKV g=${group}${kvDtype === 'float16' ? ' f16 tail' : ''}`
      console.log(`  ${String(n).padStart(6)} tokens  ${name.padEnd(18)} ${atPrefill.toFixed(1).padStart(7)} B   ${(256 / atPrefill).toFixed(2)}x smaller than float16, ${(512 / atPrefill).toFixed(2)}x than float32, ${(kivi2 / atPrefill).toFixed(2)}x than KIVI-2; tail ${tails[1]}: ${worst.toFixed(1)} B, ${(256 / worst).toFixed(2)}x`)
    }
  }
  b.close?.()
}

if (import.meta.url === `file://${process.argv[1]}`) await run()

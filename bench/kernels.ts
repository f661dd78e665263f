// Kernel benchmarks. Every line is a ratio measured in this run (machines are noisy), with its target.
import v8 from 'node:v8'
import { Bench } from 'tinybench'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import type { F32Buf, Heap, I32Buf } from '../src/backend/heap.js'
import type { HeadView } from '../src/cache/types.js'
import { supportsRelaxedSimd } from '../src/backend/wasm/load.js'

interface Timings {
  /** median over rounds of each task's median milliseconds per call */
  ms: Record<string, number>
  /** median over rounds of time(a) / time(b): robust to load that shifts between rounds */
  ratio(a: string, b: string): number
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/**
 * Times the tasks in several short tinybench runs, in alternating order, so that background load on a
 * shared machine falls on all tasks alike; ratios are taken within each round, then the median.
 */
export async function measure(tasks: Record<string, () => void>, time = 250, rounds = 5): Promise<Timings> {
  const names = Object.keys(tasks)
  const perRound: Record<string, number>[] = []
  for (let r = 0; r < rounds; r++) {
    const bench = new Bench({ time, iterations: 5, warmupTime: 50, warmupIterations: 2 })
    for (const name of r % 2 ? [...names].reverse() : names) bench.add(name, tasks[name])
    await bench.run()
    const got: Record<string, number> = {}
    for (const t of bench.tasks) {
      const res = t.result
      if (res.state !== 'completed') throw new Error(`bench task ${t.name} did not complete: ${res.state}`)
      got[t.name] = res.latency.p50
    }
    perRound.push(got)
  }
  const ms: Record<string, number> = {}
  for (const name of names) ms[name] = median(perRound.map((x) => x[name]))
  return { ms, ratio: (a, b) => median(perRound.map((x) => x[a] / x[b])) }
}

function fill(buf: F32Buf, seed: number): void {
  const v = buf.view
  let s = seed >>> 0
  for (let i = 0; i < v.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0
    v[i] = s / 2 ** 31 - 1
  }
}

/** A paged [n][d] stream with pageTokens rows per page, as the cache lays it out. */
function paged(heap: Heap, n: number, d: number, pageTokens: number, seed: number): { table: I32Buf; pages: F32Buf[] } {
  const pages: F32Buf[] = []
  for (let p = 0; p < Math.ceil(n / pageTokens); p++) {
    const b = heap.allocF32(pageTokens * d)
    fill(b, seed + p)
    pages.push(b)
  }
  return { table: heap.i32From(pages.map((b) => b.ptr)), pages }
}

const gbps = (bytes: number, ms: number): string => `${(bytes / ms / 1e6).toFixed(2)} GB/s`
const line = (what: string, value: string, ratio: number, target: string): void =>
  console.log(`${what.padEnd(58)} ${value.padStart(14)}   ratio ${ratio.toFixed(3).padStart(8)}   (${target})`)

export async function bandwidth(b: CreatedBackend): Promise<void> {
  const ops = new Ops(b)
  const heap = b.heap
  const d = 128
  const n = 131072 // 64 MiB of keys
  const pageTokens = 64
  const keys = paged(heap, n, d, pageTokens, 1)
  const view: HeadView = { kTable: keys.table.ptr, vTable: keys.table.ptr, pageTokens, n, d }
  const bytes = n * d * 4
  const src = heap.alloc(bytes)
  const dst = heap.alloc(bytes)
  const q = heap.allocF32(8 * d)
  fill(q, 9)
  const out = heap.allocF32(8 * n)
  new Uint8Array(heap.memory.buffer, src, bytes).fill(1) // touch every page before timing
  const m = await measure({
    copy: () => b.copyBytes(dst, src, bytes),
    score1: () => ops.scoreKeys(q, 1, view, 0.1, out),
    score3: () => ops.scoreKeys(q, 3, view, 0.1, out),
    score4: () => ops.scoreKeys(q, 4, view, 0.1, out),
  })
  const t = m.ms
  console.log(`keys: ${bytes / 2 ** 20} MiB (n=${n}, d=${d}, pages of ${pageTokens}); bandwidth = key bytes read per second`)
  line('wasm memory.copy (bytes read/s)', gbps(bytes, t.copy), 1, 'yardstick')
  line('scoreKeys, 1 query head vs memory.copy', gbps(bytes, t.score1), m.ratio('copy', 'score1'), 'target >= 0.8')
  line('scoreKeys, GQA group of 3 heads vs memory.copy', gbps(bytes, t.score3), m.ratio('copy', 'score3'), 'target >= 0.8')
  line('scoreKeys, GQA group of 4 heads vs memory.copy', gbps(bytes, t.score4), m.ratio('copy', 'score4'), 'target >= 0.8')
  heap.release(src)
  heap.release(dst)
  for (const p of keys.pages) p.free()
  for (const x of [keys.table, q, out]) x.free()
}

export async function versusReference(b: CreatedBackend): Promise<void> {
  const ref = await createBackend('reference', { heap: b.heap })
  const W = new Ops(b)
  const R = new Ops(ref)
  const heap = b.heap
  const d = 128
  const n = 4096
  const k = paged(heap, n, d, 64, 3)
  const v = paged(heap, n, d, 64, 4)
  const view: HeadView = { kTable: k.table.ptr, vTable: v.table.ptr, pageTokens: 64, n, d }
  const q = heap.allocF32(4 * d)
  fill(q, 5)
  const s = heap.allocF32(4 * n)
  const o = heap.allocF32(4 * d)
  const l = heap.allocF32(4)
  const top = heap.allocI32(256)
  const scratch = heap.allocI32(n)
  const x = heap.allocF32(6 * n)
  fill(x, 6)
  const x2 = heap.allocF32(6 * n)
  const pooled = heap.allocF32(n)
  const lo = heap.allocF32((n / 16) * d)
  const hi = heap.allocF32((n / 16) * d)
  const pairs: [string, (ops: Ops) => void][] = [
    ['scoreKeys (4 heads, n=4096, d=128)', (ops) => ops.scoreKeys(q, 4, view, 0.1, s)],
    ['attend dense (4 heads, n=4096, d=128)', (ops) => ops.attend(q, 4, view, null, 0, 0.1, o, l)],
    ['softmaxRows (6 x 4096)', (ops) => { heap.F32.copyWithin(x2.ptr >> 2, x.ptr >> 2, (x.ptr >> 2) + 6 * n); ops.softmaxRows(x2, 6, n) }],
    ['topK (n=4096, k=256)', (ops) => ops.topK(x, n, 256, top, scratch)],
    ['avgPool1d (n=4096, kernel=7)', (ops) => ops.pool1d('avg', x, n, 7, pooled)],
    ['pageMinMax (n=4096, d=128, page=16)', (ops) => ops.pageMinMax(view, 16, lo, hi)],
  ]
  console.log('wasm vs its TypeScript reference twin (same heap, same inputs):')
  for (const [name, f] of pairs) {
    const m = await measure({ wasm: () => f(W), reference: () => f(R) }, 200, 3)
    line(name, `${m.ms.wasm.toFixed(4)} ms`, m.ratio('reference', 'wasm'), 'speed-up, target >= 8')
  }
}

export async function topKVersusSort(b: CreatedBackend): Promise<void> {
  const ops = new Ops(b)
  const heap = b.heap
  for (const n of [32768, 1 << 20]) {
    const k = 2048
    const x = heap.allocF32(n)
    fill(x, n)
    const out = heap.allocI32(k)
    const scratch = heap.allocI32(n)
    const idx = new Int32Array(n)
    const values = new Float32Array(n)
    const m = await measure({
      topK: () => ops.topK(x, n, k, out, scratch),
      indexSort: () => {
        const xs = x.view
        for (let i = 0; i < n; i++) idx[i] = i
        idx.sort((a, c) => xs[c] - xs[a] || a - c)
      },
      valueSort: () => {
        values.set(x.view)
        values.sort()
      },
    }, 250, 3)
    line(`topK k=${k} of n=${n} vs Int32Array index sort by score`, `${m.ms.topK.toFixed(3)} ms`, m.ratio('indexSort', 'topK'), 'speed-up')
    line(`topK k=${k} of n=${n} vs Float32Array value sort()`, `${m.ms.topK.toFixed(3)} ms`, m.ratio('valueSort', 'topK'), 'speed-up (sort gives no indices)')
    for (const t2 of [x, out, scratch]) t2.free()
  }
}

export async function gatheredAttention(b: CreatedBackend): Promise<void> {
  const ops = new Ops(b)
  const heap = b.heap
  const n = 32768
  const sel = 2048
  const d = 128
  const heads = 4
  const k = paged(heap, n, d, 64, 7)
  const v = paged(heap, n, d, 64, 8)
  const view: HeadView = { kTable: k.table.ptr, vTable: v.table.ptr, pageTokens: 64, n, d }
  const q = heap.allocF32(heads * d)
  fill(q, 9)
  // ascending random indices, as topK hands them to the selection policies; 16 different selections
  // cycled call by call, so the gathered rows come from memory as the dense pass's do (a fixed
  // selection of 2 MB would sit in cache and flatter the gathered kernel)
  const picks = (seed: number): number[] => {
    const set = new Set<number>()
    let s = seed
    while (set.size < sel) {
      s = (s * 1664525 + 1013904223) >>> 0
      set.add(s % n)
    }
    return [...set].sort((a, c) => a - c)
  }
  const selections = Array.from({ length: 16 }, (_, i) => heap.i32From(picks(12345 + i)))
  let next = 0
  const out = heap.allocF32(heads * d)
  const lse = heap.allocF32(heads)
  const m = await measure({
    dense: () => ops.attend(q, heads, view, null, 0, 0.088, out, lse),
    gathered: () => ops.attend(q, heads, view, selections[next++ & 15], sel, 0.088, out, lse),
    gatheredFixed: () => ops.attend(q, heads, view, selections[0], sel, 0.088, out, lse),
  })
  const ideal = sel / n
  const cost = m.ratio('gathered', 'dense')
  const costFixed = m.ratio('gatheredFixed', 'dense')
  console.log(`decode attention, GQA group of ${heads}, d=${d}, pages of 64: dense ${m.ms.dense.toFixed(3)} ms, gathered ${m.ms.gathered.toFixed(3)} ms (fixed selection ${m.ms.gatheredFixed.toFixed(3)} ms)`)
  line(`gathered b=${sel} / dense n=${n} (varying selections), over b/n`, `${cost.toFixed(4)}`, cost / ideal, 'target <= 1.5')
  line(`gathered b=${sel} / dense n=${n} (one cached selection), over b/n`, `${costFixed.toFixed(4)}`, costFixed / ideal, 'target <= 1.5')
}

export async function relaxedVersusPlain(plain: CreatedBackend): Promise<void> {
  let note = ''
  if (!supportsRelaxedSimd() && typeof process !== 'undefined' && process.versions?.node) {
    // Node 20 ships relaxed SIMD behind a flag; wasm features are read at compile time, so set it now
    v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
    note = ' (node: --experimental-wasm-relaxed-simd set at run time)'
  }
  const relaxed = await createBackend('wasm', { relaxed: true })
  if (relaxed.build !== 'relaxed') {
    console.log('relaxed SIMD is not supported by this runtime: no comparison')
    return
  }
  console.log(`relaxed-SIMD build vs plain SIMD build${note}:`)
  const setups = [plain, relaxed].map((b) => {
    const heap = b.heap
    const n = 16384
    const d = 128
    const k = paged(heap, n, d, 64, 1)
    const v = paged(heap, n, d, 64, 2)
    const q = heap.allocF32(4 * d)
    fill(q, 3)
    return { ops: new Ops(b), view: { kTable: k.table.ptr, vTable: v.table.ptr, pageTokens: 64, n, d }, q, s: heap.allocF32(4 * n), o: heap.allocF32(4 * d), l: heap.allocF32(4) }
  })
  const m = await measure({
    scorePlain: () => setups[0].ops.scoreKeys(setups[0].q, 4, setups[0].view, 0.1, setups[0].s),
    scoreRelaxed: () => setups[1].ops.scoreKeys(setups[1].q, 4, setups[1].view, 0.1, setups[1].s),
    attendPlain: () => setups[0].ops.attend(setups[0].q, 4, setups[0].view, null, 0, 0.1, setups[0].o, setups[0].l),
    attendRelaxed: () => setups[1].ops.attend(setups[1].q, 4, setups[1].view, null, 0, 0.1, setups[1].o, setups[1].l),
  })
  line('scoreKeys (4 heads, n=16384, d=128): relaxed vs plain', `${m.ms.scoreRelaxed.toFixed(3)} ms`, m.ratio('scorePlain', 'scoreRelaxed'), 'speed-up')
  line('attend dense (4 heads, n=16384, d=128): relaxed vs plain', `${m.ms.attendRelaxed.toFixed(3)} ms`, m.ratio('attendPlain', 'attendRelaxed'), 'speed-up')
}

export async function run(): Promise<void> {
  const wasm = await createBackend('wasm', { relaxed: false })
  console.log(`kernels bench: ${typeof process !== 'undefined' ? `node ${process.version}` : ''}, plain SIMD build unless stated`)
  await bandwidth(wasm)
  await versusReference(wasm)
  await topKVersusSort(wasm)
  await gatheredAttention(wasm)
  await relaxedVersusPlain(wasm)
}

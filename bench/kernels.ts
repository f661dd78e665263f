// Kernel benchmarks. Every line is a ratio measured in this run (machines are noisy), with its target.
import v8 from 'node:v8'
import { Bench } from 'tinybench'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import type { F32Buf, Heap, I32Buf } from '../src/backend/heap.js'
import type { HeadView } from '../src/cache/types.js'
import { supportsRelaxedSimd } from '../src/backend/wasm/load.js'

/** Median milliseconds per call of each task, measured in one Bench run. */
async function medians(tasks: Record<string, () => void>, time = 600): Promise<Record<string, number>> {
  const bench = new Bench({ time, warmupTime: 100 })
  for (const [name, fn] of Object.entries(tasks)) bench.add(name, fn)
  await bench.run()
  const out: Record<string, number> = {}
  for (const t of bench.tasks) {
    const r = t.result
    if (r.state !== 'completed') throw new Error(`bench task ${t.name} did not complete: ${r.state}`)
    out[t.name] = r.latency.p50
  }
  return out
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
  const t = await medians({
    copy: () => b.copyBytes(dst, src, bytes),
    score1: () => ops.scoreKeys(q, 1, view, 0.1, out),
    score4: () => ops.scoreKeys(q, 4, view, 0.1, out),
  }, 1500)
  console.log(`keys: ${bytes / 2 ** 20} MiB (n=${n}, d=${d}, pages of ${pageTokens}); bandwidth = key bytes read per second`)
  line('wasm memory.copy (bytes read/s)', gbps(bytes, t.copy), 1, 'yardstick')
  line('scoreKeys, 1 query head vs memory.copy', gbps(bytes, t.score1), t.copy / t.score1, 'target >= 0.8')
  line('scoreKeys, GQA group of 4 heads vs memory.copy', gbps(bytes, t.score4), t.copy / t.score4, 'target >= 0.8')
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
    const t = await medians({ wasm: () => f(W), reference: () => f(R) }, 400)
    line(name, `${t.wasm.toFixed(4)} ms`, t.reference / t.wasm, 'speed-up, target >= 8')
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
    const t = await medians({
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
    }, 800)
    line(`topK k=${k} of n=${n} vs Int32Array index sort by score`, `${t.topK.toFixed(3)} ms`, t.indexSort / t.topK, 'speed-up')
    line(`topK k=${k} of n=${n} vs Float32Array value sort()`, `${t.topK.toFixed(3)} ms`, t.valueSort / t.topK, 'speed-up (sort gives no indices)')
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
  // ascending random indices, as topK hands them to the selection policies
  const picks = new Set<number>()
  let s = 12345
  while (picks.size < sel) {
    s = (s * 1664525 + 1013904223) >>> 0
    picks.add(s % n)
  }
  const idx = heap.i32From([...picks].sort((a, c) => a - c))
  const out = heap.allocF32(heads * d)
  const lse = heap.allocF32(heads)
  const t = await medians({
    dense: () => ops.attend(q, heads, view, null, 0, 0.088, out, lse),
    gathered: () => ops.attend(q, heads, view, idx, sel, 0.088, out, lse),
  }, 1000)
  const ideal = sel / n
  console.log(`decode attention, GQA group of ${heads}, d=${d}, pages of 64: dense ${t.dense.toFixed(3)} ms, gathered ${t.gathered.toFixed(3)} ms`)
  line(`gathered b=${sel} / dense n=${n}, relative to b/n=${ideal}`, `${(t.gathered / t.dense).toFixed(4)}`, t.gathered / t.dense / ideal, 'target <= 1.5')
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
  const t = await medians({
    scorePlain: () => setups[0].ops.scoreKeys(setups[0].q, 4, setups[0].view, 0.1, setups[0].s),
    scoreRelaxed: () => setups[1].ops.scoreKeys(setups[1].q, 4, setups[1].view, 0.1, setups[1].s),
    attendPlain: () => setups[0].ops.attend(setups[0].q, 4, setups[0].view, null, 0, 0.1, setups[0].o, setups[0].l),
    attendRelaxed: () => setups[1].ops.attend(setups[1].q, 4, setups[1].view, null, 0, 0.1, setups[1].o, setups[1].l),
  }, 600)
  line('scoreKeys (4 heads, n=16384, d=128): relaxed vs plain', `${t.scoreRelaxed.toFixed(3)} ms`, t.scorePlain / t.scoreRelaxed, 'speed-up')
  line('attend dense (4 heads, n=16384, d=128): relaxed vs plain', `${t.attendRelaxed.toFixed(3)} ms`, t.attendPlain / t.attendRelaxed, 'speed-up')
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

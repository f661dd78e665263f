// Prefill on WebGPU (issue 13): the chunk kernels (the register-blocked matmul of wgsl/gemm.wgsl, the
// FlashAttention-2 chunk attention of wgsl/flash.wgsl) against the simple kernels they replace
// (WebGpuKernels.chunkKernels = 'simple': one output a thread in 16 x 16 tiles, one workgroup a query
// row and head), every ratio measured in the same run:
//   matmul GFLOP/s at prefill shapes (rows = chunk tokens): the fixture model's projections and MLP,
//     with --full also Llama-3-8B's at 512 rows;
//   chunk attention GFLOP/s: the last chunk of a prompt (the chunk's rows over the whole cache), the
//     fixture's heads (6 query heads on 2 KV heads, d 64), with --full also Llama-3-8B's (32 on 8, d 128);
//   end to end: prefill of --length tokens of the fixture model (models/fixture-14m) at each --chunks
//     size, both kernel sets on one device, the last token's logits of the two compared.
// Each timed kernel's output is checked first (sampled entries against the CPU; tiled against simple).
//   node dist/bench/webgpu-prefill.js [--full] [--length N] [--chunks 128,512,4096] [--runs 3]
// --full: 4096 tokens at chunks 128, 512 and 4096 and the 8B shapes (a real GPU); without it, sizes
// that run on lavapipe in a minute or two (a check that the bench runs, no speed figure).
import { pathToFileURL } from 'node:url'
import { createBackend } from '../src/backend/index.js'
import { WebGpuUnavailableError } from '../src/backend/webgpu/device.js'
import type { WebGpuBackend } from '../src/backend/webgpu/index.js'
import { WebGpuKernels, type ChunkKernels } from '../src/backend/webgpu/kernels.js'
import { loadModel } from '../src/node/load.js'
import { Bump, cpuAttend, fillRandom, time } from './webgpu.js'

const MODEL = 'models/fixture-14m'
const KINDS: ChunkKernels[] = ['simple', 'tiled']

export interface PrefillBenchOptions {
  full: boolean
  length: number
  chunks: number[]
  runs: number
}

/** Parses the flags above; RangeError naming the bad value. */
export function parsePrefillArgs(argv: string[]): PrefillBenchOptions {
  const full = argv.includes('--full')
  const o: PrefillBenchOptions = { full, length: full ? 4096 : 128, chunks: full ? [128, 512, 4096] : [32, 128], runs: full ? 3 : 1 }
  const int = (flag: string, v: string | undefined, lo: number, hi: number) => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < lo || n > hi) throw new RangeError(`${flag}: expected an integer in [${lo}, ${hi}], got ${v}`)
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--full') continue
    if (a === '--length') o.length = int(a, argv[++i], 2, 8192)
    else if (a === '--runs') o.runs = int(a, argv[++i], 1, 100)
    else if (a === '--chunks') o.chunks = (argv[++i] ?? '').split(',').map((c) => int(a, c, 1, 4096))
    else throw new RangeError(`webgpu-prefill: unknown argument ${a}`)
  }
  return o
}

const gflops = (flop: number, s: number) => (flop / s / 1e9).toPrecision(3)
const us = (s: number) => `${(s * 1e6).toFixed(0)} us`

/** Each kernel set's time per call of `encode`, after checking its output with `check`. */
async function both(k: WebGpuKernels, encode: () => void, check: (kind: ChunkKernels) => Promise<void>, reps: number): Promise<Record<ChunkKernels, number>> {
  const t = { simple: 0, tiled: 0 }
  for (const kind of KINDS) {
    k.chunkKernels = kind
    encode()
    await check(kind)
    t[kind] = await time(k, encode, reps, 5)
  }
  k.chunkKernels = 'tiled'
  return t
}

/** y = x w^T at T x K -> O: sampled outputs against the CPU, then both kernel sets timed. */
async function benchMatmul(k: WebGpuKernels, what: string, T: number, K: number, O: number, reps: number): Promise<void> {
  const bump = new Bump()
  const x = bump.take(T * K * 4)
  const w = bump.take(O * K * 4)
  const y = bump.take(T * O * 4)
  const arena = k.pool.acquire(bump.top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
  k.arena = arena
  fillRandom(k, x, T * K * 4, T + K)
  fillRandom(k, w, O * K * 4, O + K)
  const samples = [[0, 0], [T - 1, O - 1], [T >> 1, O >> 1], [T - 1, 0], [0, O - 1]]
  const check = async (kind: ChunkKernels) => {
    for (const [t, o] of samples) {
      const xr = new Float32Array(await k.read(x + t * K * 4, K * 4))
      const wr = new Float32Array(await k.read(w + o * K * 4, K * 4))
      const got = new Float32Array(await k.read(y + (t * O + o) * 4, 4))[0]
      let want = 0
      for (let c = 0; c < K; c++) want += xr[c] * wr[c]
      if (!(Math.abs(got - want) <= 1e-4 * Math.sqrt(K) * 4)) throw new Error(`${kind} matmul ${what}: y[${t}][${o}] = ${got}, CPU ${want}`)
    }
  }
  const t = await both(k, () => k.matmul(x, w, 0, y, T, K, O), check, reps)
  const flop = 2 * T * K * O
  console.log(`| matmul ${what}: ${T} x ${K} -> ${O} | ${us(t.simple)} (${gflops(flop, t.simple)} GFLOP/s) | ${us(t.tiled)} (${gflops(flop, t.tiled)} GFLOP/s) | ${(t.simple / t.tiled).toFixed(1)}x |`)
  k.arena = null
  k.pool.release(arena)
}

/**
 * The last chunk of an n-token prompt: T rows of hq query heads (group per KV head) over n cached keys
 * per KV head, pages of 64 tokens scattered (reversed) through the K/V region as a paged cache holds
 * them. Tiled against simple over every output, one row against the CPU; then both timed.
 */
async function benchAttention(k: WebGpuKernels, what: string, T: number, n: number, hq: number, group: number, d: number, reps: number): Promise<void> {
  const pt = 64
  const kvHeads = hq / group
  const pages = Math.ceil(n / pt)
  const bump = new Bump()
  const kv = bump.take(2 * kvHeads * pages * pt * d * 4)
  const tables = bump.take(2 * kvHeads * pages * 4)
  const tabs = bump.take(kvHeads * 16)
  const q = bump.take(T * hq * d * 4)
  const out = bump.take(T * hq * d * 4)
  const arena = k.pool.acquire(bump.top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
  k.arena = arena
  fillRandom(k, kv, 2 * kvHeads * pages * pt * d * 4, n)
  fillRandom(k, q, T * hq * d * 4, T)
  const pageAt = (s: number, p: number) => kv + (s * pages + (pages - 1 - p)) * pt * d * 4
  const tab = new Uint32Array(2 * kvHeads * pages)
  for (let s = 0; s < 2 * kvHeads; s++) for (let p = 0; p < pages; p++) tab[s * pages + p] = pageAt(s, p)
  k.write(tables, tab)
  const heads = new Uint32Array(kvHeads * 4)
  for (let g = 0; g < kvHeads; g++) heads.set([tables + g * pages * 4, tables + (kvHeads + g) * pages * 4, n - T, n], g * 4)
  k.write(tabs, heads)
  const scale = 1 / Math.sqrt(d)
  let simple: Float32Array | null = null
  const check = async (kind: ChunkKernels) => {
    const got = new Float32Array(await k.read(out, T * hq * d * 4))
    if (kind === 'simple') {
      // the last row of query head 0 against the CPU (it sees every key)
      const K0 = new Float32Array(n * d)
      const V0 = new Float32Array(n * d)
      for (let p = 0; p < pages; p++) {
        const rows = Math.min(pt, n - p * pt) * d
        K0.set(new Float32Array(await k.read(pageAt(0, p), rows * 4)), p * pt * d)
        V0.set(new Float32Array(await k.read(pageAt(kvHeads, p), rows * 4)), p * pt * d)
      }
      const q0 = new Float32Array(await k.read(q + (T - 1) * hq * d * 4, d * 4))
      const want = cpuAttend(q0, 1, d, K0, V0, Array.from({ length: n }, (_, i) => i), scale)
      const row = got.subarray((T - 1) * hq * d, (T - 1) * hq * d + d)
      const worst = row.reduce((m, v, c) => Math.max(m, Math.abs(v - want[c])), 0)
      if (!(worst < 1e-4)) throw new Error(`simple attention ${what}: last row differs from the CPU by ${worst}`)
      simple = got
      return
    }
    const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - simple![i])), 0)
    if (!(worst < 1e-4)) throw new Error(`tiled attention ${what}: differs from the simple kernel by ${worst}`)
  }
  const t = await both(k, () => k.attendCausal(q, hq * d, hq, group, T, d, tabs, pt, scale, out, hq * d), check, reps)
  // q.k and p.v over the keys each row sees: rows n - T + 1 .. n
  const flop = 4 * d * hq * (T * (n - T) + (T * (T + 1)) / 2)
  console.log(`| chunk attention ${what}: ${T} rows over ${n} keys | ${us(t.simple)} (${gflops(flop, t.simple)} GFLOP/s) | ${us(t.tiled)} (${gflops(flop, t.tiled)} GFLOP/s) | ${(t.simple / t.tiled).toFixed(1)}x |`)
  k.arena = null
  k.pool.release(arena)
}

/** Prefill of `length` tokens at each chunk size, both kernel sets; the last token's logits compared. */
async function benchModel(backend: WebGpuBackend, o: PrefillBenchOptions): Promise<void> {
  const K = backend.gpu
  for (const chunk of o.chunks) {
    const model = await loadModel(MODEL, { backendInstance: backend, chunk })
    try {
      const gpu = model.gpu!
      const text = 'The pass key is 71432. Remember it. The grass is green and the sky is blue. '
      let ids: number[] = []
      while (ids.length < o.length) ids = ids.concat(model.tokenizer.encode(text))
      ids = ids.slice(0, o.length)
      const V = model.config.vocab
      const logits: Record<ChunkKernels, Float32Array> = { simple: new Float32Array(V), tiled: new Float32Array(V) }
      const prefill = async (kind: ChunkKernels) => {
        const cache = model.newCache()
        try {
          for (let s = 0; s < ids.length; s += chunk) {
            const T = Math.min(chunk, ids.length - s)
            const last = s + T === ids.length
            await gpu.step(ids.slice(s, s + T), Int32Array.from({ length: T }, (_, t) => s + t), cache, last ? { logits: 'last', out: logits[kind] } : {})
          }
          await gpu.finish()
        } finally {
          cache.dispose()
        }
      }
      const ms: Record<ChunkKernels, number> = { simple: 0, tiled: 0 }
      for (const kind of KINDS) {
        K.chunkKernels = kind
        await prefill(kind) // warm-up
        const runs: number[] = []
        for (let r = 0; r < o.runs; r++) {
          const t0 = performance.now()
          await prefill(kind)
          runs.push(performance.now() - t0)
        }
        ms[kind] = runs.sort((a, b) => a - b)[runs.length >> 1]
      }
      K.chunkKernels = 'tiled'
      let max = 0
      let worst = 0
      const argmax = (l: Float32Array) => l.reduce((b, v, i) => (v > l[b] ? i : b), 0)
      for (let i = 0; i < V; i++) {
        max = Math.max(max, Math.abs(logits.simple[i]))
        worst = Math.max(worst, Math.abs(logits.tiled[i] - logits.simple[i]))
      }
      if (!(worst / max < 1e-4)) throw new Error(`prefill at chunk ${chunk}: tiled logits differ from simple by ${worst} (max |logit| ${max})`)
      const same = argmax(logits.tiled) === argmax(logits.simple) ? 'same argmax' : 'ARGMAX DIFFERS'
      const tok = (m: number) => ((o.length / m) * 1000).toFixed(0)
      console.log(`| prefill ${o.length} tokens, chunk ${chunk} (median of ${o.runs}) | ${ms.simple.toFixed(1)} ms (${tok(ms.simple)} tok/s) | ${ms.tiled.toFixed(1)} ms (${tok(ms.tiled)} tok/s) | ${(ms.simple / ms.tiled).toFixed(1)}x | last logits within ${(worst / max).toExponential(1)} of max, ${same} |`)
    } finally {
      model.dispose()
    }
  }
}

export async function run(o = parsePrefillArgs(process.argv.slice(2))): Promise<void> {
  let backend: WebGpuBackend
  try {
    backend = (await createBackend('webgpu')) as WebGpuBackend
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) {
      console.log(`webgpu-prefill: skipped (${e.message})`)
      return
    }
    throw e
  }
  try {
    const gpu = backend.device
    console.log(`adapter: ${gpu.adapterName || '(unnamed)'}; subgroups ${gpu.subgroups}; ${o.full ? 'full' : 'small (lavapipe)'} sizes`)
    console.log('| what | simple kernels | tiled kernels | simple / tiled |')
    console.log('| --- | --- | --- | --- |')
    // the kernel figures on a second kernel set over its own arenas (the model's mirror stays apart)
    const k = await WebGpuKernels.create(gpu)
    try {
      const reps = o.full ? 10 : 1
      for (const T of o.full ? [128, 512, 4096] : [64]) {
        await benchMatmul(k, 'fixture q/o', T, 384, 384, reps)
        await benchMatmul(k, 'fixture gate/up', T, 384, 1024, reps)
        await benchMatmul(k, 'fixture down', T, 1024, 384, reps)
      }
      if (o.full) {
        await benchMatmul(k, 'Llama-3-8B q/o', 512, 4096, 4096, reps)
        await benchMatmul(k, 'Llama-3-8B gate/up', 512, 4096, 14336, reps)
        await benchMatmul(k, 'Llama-3-8B down', 512, 14336, 4096, reps)
      }
      for (const [T, n] of o.full ? [[128, 4096], [512, 4096], [4096, 4096]] : [[64, 256]]) await benchAttention(k, 'fixture (6 on 2 heads, d 64)', T, n, 6, 3, 64, reps)
      if (o.full) await benchAttention(k, 'Llama-3-8B (32 on 8 heads, d 128)', 512, 8192, 32, 4, 128, reps)
    } finally {
      k.destroy()
    }
    await benchModel(backend, o)
  } finally {
    backend.destroy()
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run()

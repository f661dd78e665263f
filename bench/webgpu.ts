// WebGPU kernel benchmarks: every figure is a ratio against a yardstick measured in the same process.
//   key scoring read bandwidth vs a plain streaming WGSL sum over a buffer of the same size;
//   decode attention per layer of the Llama-3-8B shape (32 query heads, 8 KV heads, head dim 128),
//   dense over n tokens vs gathered over a 2k-token selection, and the selection chain itself.
// `node dist/bench/webgpu.js [--full]`: --full uses 512 MiB of keys and 32k/128k tokens (a GPU with
// 2 GiB storage bindings); without it, small sizes that run on lavapipe in seconds.
import { pathToFileURL } from 'node:url'
import { openGpuDevice, WebGpuUnavailableError } from '../src/backend/webgpu/device.js'
import { attendScratchWords, WebGpuKernels } from '../src/backend/webgpu/kernels.js'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

/** A byte-pointer bump allocator over one GPU arena buffer (the bench's whole working set). */
class Bump {
  top = 256
  take(bytes: number): number {
    const p = this.top
    this.top += Math.ceil(bytes / 256) * 256
    return p
  }
}

/** Fills [ptr, ptr + bytes) with normal-ish floats, 16 MiB at a time from one reused CPU block. */
function fillRandom(k: WebGpuKernels, ptr: number, bytes: number, seed: number): void {
  const block = new Float32Array(Math.min(bytes, 16 << 20) / 4)
  let a = seed >>> 0
  for (let i = 0; i < block.length; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0
    block[i] = ((a >>> 8) / (1 << 24) - 0.5) * 3.4
  }
  for (let off = 0; off < bytes; off += block.byteLength) {
    const len = Math.min(block.byteLength, bytes - off)
    k.write(ptr + off, new Float32Array(block.buffer, 0, len / 4))
  }
}

/** Median seconds per repetition of `encode`, `reps` repetitions per submit, over `rounds` submits. */
async function time(k: WebGpuKernels, encode: () => void, reps: number, rounds = 7): Promise<number> {
  encode()
  await k.finish() // warm-up: pipelines compiled, caches touched
  const per: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    for (let i = 0; i < reps; i++) encode()
    await k.finish()
    per.push((performance.now() - t0) / 1000 / reps)
  }
  return median(per)
}

const gbs = (bytes: number, s: number) => (bytes / s / 1e9).toFixed(0)

export async function run(full = process.argv.includes('--full')): Promise<void> {
  let gpu
  try {
    gpu = await openGpuDevice()
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) {
      console.log(`webgpu: skipped (${e.message})`)
      return
    }
    throw e
  }
  const k = await WebGpuKernels.create(gpu)
  const d = 128
  const group = 4 // Llama-3-8B: 32 query heads over 8 KV heads
  const kvHeads = 8
  console.log(`adapter: ${gpu.adapterName || '(unnamed)'}; subgroups ${gpu.subgroups}, shader-f16 ${gpu.shaderF16}; ${full ? 'full' : 'small (lavapipe)'} sizes`)

  // --- key scoring vs streaming read of the same bytes ---
  const nKeys = full ? (512 << 20) / (d * 4) : (16 << 20) / (d * 4)
  const keyBytes = nKeys * d * 4
  const threadsOut = 65535 * 256
  {
    const bump = new Bump()
    const keys = bump.take(keyBytes)
    const table = bump.take(4)
    const q = bump.take(group * d * 4)
    const out = bump.take(group * nKeys * 4)
    const sums = bump.take(threadsOut * 4)
    const arena = k.pool.acquire(bump.top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
    k.arena = arena
    fillRandom(k, keys, keyBytes, 1)
    fillRandom(k, q, group * d * 4, 2)
    k.write(table, Uint32Array.of(keys))
    // correctness: a few scores against a CPU dot product
    k.scoreKeys(q, group, d, table, nKeys, nKeys, 0.125, out)
    const qv = new Float32Array(await k.read(q, group * d * 4))
    for (const i of [0, 1, nKeys >> 1, nKeys - 1]) {
      const kv = new Float32Array(await k.read(keys + i * d * 4, d * 4))
      for (let h = 0; h < group; h++) {
        const got = new Float32Array(await k.read(out + (h * nKeys + i) * 4, 4))[0]
        let want = 0
        for (let c = 0; c < d; c++) want += qv[h * d + c] * kv[c]
        if (Math.abs(got - 0.125 * want) > 1e-3 * (1 + Math.abs(want))) throw new Error(`scoreKeys check failed at key ${i} head ${h}: ${got} vs ${0.125 * want}`)
      }
    }
    const groups = Math.min(65535, full ? 8192 : 256)
    const reps = full ? 20 : 3
    const tStream = await time(k, () => k.streamSum(keys, nKeys * d, sums, groups), reps)
    const tScore1 = await time(k, () => k.scoreKeys(q, 1, d, table, nKeys, nKeys, 0.125, out), reps)
    const tScore = await time(k, () => k.scoreKeys(q, group, d, table, nKeys, nKeys, 0.125, out), reps)
    const mib = keyBytes >> 20
    console.log(`| streaming WGSL sum over ${mib} MiB | ${(tStream * 1e6).toFixed(0)} us | ${gbs(keyBytes, tStream)} GB/s | 1.00 |`)
    console.log(`| key scoring, 1 head, ${nKeys} keys x ${d} | ${(tScore1 * 1e6).toFixed(0)} us | ${gbs(keyBytes, tScore1)} GB/s | ${(tStream / tScore1).toFixed(2)} |`)
    console.log(`| key scoring, GQA group of ${group}, ${nKeys} keys x ${d} | ${(tScore * 1e6).toFixed(0)} us | ${gbs(keyBytes, tScore)} GB/s | ${(tStream / tScore).toFixed(2)} |`)
    k.arena = null
    k.pool.release(arena)
  }

  // --- decode attention per layer: 8 KV heads x 4 query heads, dense vs gathered at a 2k budget ---
  const budget = 2048
  for (const n of full ? [32768, 131072] : [4096, 8192]) {
    const pageTokens = 256
    const pages = n / pageTokens
    const bump = new Bump()
    const kv = bump.take(2 * kvHeads * n * d * 4)
    const tables = bump.take(2 * kvHeads * pages * 4)
    const q = bump.take(kvHeads * group * d * 4)
    const idx = bump.take(budget * 4)
    const out = bump.take(kvHeads * group * d * 4)
    const lse = bump.take(kvHeads * group * 4)
    const scores = bump.take(group * n * 4)
    const sel = bump.take(budget * 4)
    const scratch = bump.take(attendScratchWords(group, d, n) * 4)
    const arena = k.pool.acquire(bump.top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
    k.arena = arena
    fillRandom(k, kv, 2 * kvHeads * n * d * 4, 3)
    fillRandom(k, q, kvHeads * group * d * 4, 4)
    // pages of each stream scattered through the K/V region (reversed), as a paged cache holds them
    const tab = new Uint32Array(2 * kvHeads * pages)
    for (let s = 0; s < 2 * kvHeads; s++) for (let p = 0; p < pages; p++) tab[s * pages + p] = kv + (s * pages + (pages - 1 - p)) * pageTokens * d * 4
    k.write(tables, tab)
    const pick = Int32Array.from({ length: budget }, (_, i) => Math.floor(((i + 0.5) * n) / budget))
    k.write(idx, pick)
    const kT = (h: number) => tables + h * pages * 4
    const vT = (h: number) => tables + (kvHeads + h) * pages * 4
    const qh = (h: number) => q + h * group * d * 4
    const dense = () => {
      for (let h = 0; h < kvHeads; h++) k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, 0, 0, 1 / Math.sqrt(d), out + h * group * d * 4, lse + h * group * 4, scratch)
    }
    const gathered = () => {
      for (let h = 0; h < kvHeads; h++) k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, idx, budget, 1 / Math.sqrt(d), out + h * group * d * 4, lse + h * group * 4, scratch)
    }
    // the selection chain of one layer: score every key for each KV head's group, soft-vote-free top-k of
    // the first head's row, then attention over the chosen indices
    const selected = () => {
      for (let h = 0; h < kvHeads; h++) {
        k.scoreKeys(qh(h), group, d, kT(h), pageTokens, n, 1 / Math.sqrt(d), scores)
        k.topK(scores, n, budget, sel)
        k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, sel, budget, 1 / Math.sqrt(d), out + h * group * d * 4, lse + h * group * 4, scratch)
      }
    }
    // correctness: attention over every index in order equals dense attention (head 0)
    k.write(scores, Int32Array.from({ length: n }, (_, i) => i))
    k.attend(qh(0), group, d, kT(0), vT(0), pageTokens, n, 0, 0, 0.088, out, lse, scratch)
    const a = new Float32Array(await k.read(out, group * d * 4))
    k.attend(qh(0), group, d, kT(0), vT(0), pageTokens, n, scores, n, 0.088, out, lse, scratch)
    const b = new Float32Array(await k.read(out, group * d * 4))
    const worst = a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0)
    if (!(worst < 1e-5)) throw new Error(`attend: all-indices gathered differs from dense by ${worst}`)
    const reps = full ? 10 : 2
    const tDense = await time(k, dense, reps)
    const tGather = await time(k, gathered, reps)
    const tSel = await time(k, selected, full ? 3 : 1, full ? 5 : 3)
    const kvBytes = 2 * kvHeads * n * d * 4
    console.log(`| attention per layer, n=${n}, dense | ${(tDense * 1e6).toFixed(0)} us | ${gbs(kvBytes, tDense)} GB/s of K+V | 1.00 |`)
    console.log(`| attention per layer, n=${n}, gathered ${budget} | ${(tGather * 1e6).toFixed(0)} us | | ${(tDense / tGather).toFixed(1)}x faster (b/n = ${(budget / n).toFixed(3)}) |`)
    console.log(`| score + top-${budget} + gathered attention per layer, n=${n} | ${(tSel * 1e6).toFixed(0)} us | | ${(tDense / tSel).toFixed(2)}x dense |`)
    k.arena = null
    k.pool.release(arena)
  }
  k.destroy()
  gpu.destroy()
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run()

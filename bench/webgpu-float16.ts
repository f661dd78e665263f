// Float16 against float32 KV pages on the GPU: decode attention per layer of the Llama-3-8B shape (32
// query heads over 8 KV heads, head dim 128; dense over n tokens, split as the runtime splits it) and
// GQA key scoring of one KV head, the same rows stored both ways in one arena, float32 the yardstick
// (ratio 1.00). Float16 runs once per widening path the adapter offers: shader-f16 (vec2<f16>) and
// core WGSL (unpack2x16float, the path of adapters without shader-f16, such as the H200's Dawn).
// Every timed kernel's output is checked against a float64 CPU computation over the widened rows first.
// `node dist/bench/webgpu-float16.js [--full]`: --full is n = 32768 (a GPU); without it, n = 1024 (lavapipe).
import { pathToFileURL } from 'node:url'
import { halfToFloat } from '../src/backend/half.js'
import { openGpuDevice, WebGpuUnavailableError, type GpuDevice } from '../src/backend/webgpu/device.js'
import { attendScratchWords, attendSplit, WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { Bump, cpuAttend, time } from './webgpu.js'

const d = 128
const group = 4
const kvHeads = 8

/**
 * rows of halves (the float16 pages: random signs and mantissas, magnitudes in [2^-4, 2), drawn as bits so
 * that 67M of them take no float conversion) and the same rows widened (the float32 pages)
 */
function rows(count: number, seed: number): { wide: Float32Array; half: Uint16Array } {
  const half = new Uint16Array(count)
  const wide = new Float32Array(count)
  let a = seed >>> 0
  for (let i = 0; i < count; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0
    half[i] = (a >>> 16) & 0x8000 | ((11 + ((a >>> 10) % 5)) << 10) | (a & 0x3ff)
    wide[i] = halfToFloat(half[i])
  }
  return { wide, half }
}

export async function run(full = process.argv.includes('--full')): Promise<void> {
  let gpu: GpuDevice
  try {
    gpu = await openGpuDevice()
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) {
      console.log(`webgpu-float16: skipped (${e.message})`)
      return
    }
    throw e
  }
  const n = full ? 32768 : 1024
  const reps = full ? 10 : 2
  const pageTokens = 256
  const pages = n / pageTokens
  // the kernels per path: float32 pages, float16 through shader-f16 (when present), float16 through unpack2x16float
  const paths: [string, WebGpuKernels, boolean][] = [['float32', await WebGpuKernels.create(gpu), false]]
  if (gpu.shaderF16) paths.push(['float16, shader-f16', await WebGpuKernels.create(gpu), true])
  paths.push(['float16, unpack2x16float', await WebGpuKernels.create({ ...gpu, shaderF16: false }), true])
  console.log(`adapter: ${gpu.adapterName || '(unnamed)'}; subgroups ${gpu.subgroups}, shader-f16 ${gpu.shaderF16}; n = ${n}, pages of ${pageTokens}`)

  const bump = new Bump()
  const streams = 2 * kvHeads // K then V of each KV head
  const f32Rows = bump.take(streams * n * d * 4)
  const f16Rows = bump.take(streams * n * d * 2)
  const tables32 = bump.take(streams * pages * 4)
  const tables16 = bump.take(streams * pages * 4)
  const q = bump.take(kvHeads * group * d * 4)
  const out = bump.take(kvHeads * group * d * 4)
  const lse = bump.take(kvHeads * group * 4)
  const scores = bump.take(group * n * 4)
  const scratch = bump.take(attendScratchWords(group, d, n) * 4)
  const top = bump.top
  const data = Array.from({ length: streams }, (_, s) => rows(n * d, 10 + s))
  const Q = rows(kvHeads * group * d, 3).wide
  // pages scattered through each region (reversed), as a paged cache holds them
  const pageAt = (base: number, bytes: number, s: number, p: number) => base + (s * pages + (pages - 1 - p)) * pageTokens * d * bytes
  const tab32 = new Uint32Array(streams * pages)
  const tab16 = new Uint32Array(streams * pages)
  for (let s = 0; s < streams; s++) for (let p = 0; p < pages; p++) [tab32[s * pages + p], tab16[s * pages + p]] = [pageAt(f32Rows, 4, s, p), pageAt(f16Rows, 2, s, p)]
  const scale = 1 / Math.sqrt(d)
  const results: [string, number, number][] = []
  for (const [name, k, half] of paths) {
    const arena = k.pool.acquire(top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
    k.arena = arena
    for (let s = 0; s < streams; s++) {
      for (let p = 0; p < pages; p++) {
        const span = [p * pageTokens * d, (p + 1) * pageTokens * d]
        if (half) k.write(pageAt(f16Rows, 2, s, p), data[s].half.subarray(span[0], span[1]))
        else k.write(pageAt(f32Rows, 4, s, p), data[s].wide.subarray(span[0], span[1]))
      }
    }
    k.write(half ? tables16 : tables32, half ? tab16 : tab32)
    k.write(q, Q)
    const tables = half ? tables16 : tables32
    const kT = (h: number) => tables + h * pages * 4
    const vT = (h: number) => tables + (kvHeads + h) * pages * 4
    const qh = (h: number) => q + h * group * d * 4
    const attend = (half ? k.attendF16 : k.attend).bind(k)
    const score = (half ? k.scoreKeysF16 : k.scoreKeys).bind(k)
    const layer = () => {
      for (let h = 0; h < kvHeads; h++) attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, 0, 0, scale, out + h * group * d * 4, lse + h * group * 4, scratch)
    }
    const scoring = () => score(qh(0), group, d, kT(0), pageTokens, n, scale, scores)
    // correctness: KV head 0's output and scores against float64 over the (widened) rows
    layer()
    scoring()
    const got = new Float32Array(await k.read(out, group * d * 4))
    const want = cpuAttend(Q.subarray(0, group * d), group, d, data[0].wide, data[kvHeads].wide, Array.from({ length: n }, (_, i) => i), scale)
    const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - want[i])), 0)
    if (!(worst < 1e-4)) throw new Error(`${name}: attention differs from the CPU by ${worst}`)
    const gotScores = new Float32Array(await k.read(scores, 4 * 4))
    for (let i = 0; i < 4; i++) {
      let dot = 0
      for (let c = 0; c < d; c++) dot += Q[c] * data[0].wide[i * d + c]
      if (!(Math.abs(gotScores[i] - scale * dot) < 1e-4 * (1 + Math.abs(dot)))) throw new Error(`${name}: score ${i} is ${gotScores[i]}, the CPU's ${scale * dot}`)
    }
    results.push([name, await time(k, layer, reps), await time(k, scoring, reps)])
    k.arena = null
    k.pool.release(arena)
  }
  const [, att32, score32] = results[0]
  const us = (t: number) => `${(t * 1e6).toFixed(0)} us`
  const gbs = (bytes: number, t: number) => `${(bytes / t / 1e9).toFixed(0)} GB/s`
  console.log(`| kernel | pages | time | read | vs float32 |`)
  console.log(`|---|---|---|---|---|`)
  for (const [name, att, sc] of results) {
    const b = name === 'float32' ? 4 : 2
    console.log(`| decode attention per layer, n=${n}, dense (split ${attendSplit(n)}) | ${name} | ${us(att)} | ${gbs(streams * n * d * b, att)} of K+V | ${(att32 / att).toFixed(2)}x |`)
    console.log(`| key scoring, GQA group of ${group}, ${n} keys x ${d} | ${name} | ${us(sc)} | ${gbs(n * d * b, sc)} of K | ${(score32 / sc).toFixed(2)}x |`)
  }
  for (const [, k] of paths) k.destroy()
  gpu.destroy()
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run()

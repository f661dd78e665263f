// WebGPU kernel benchmarks: every figure is a ratio against a yardstick measured in the same process.
//   key scoring read bandwidth vs a plain streaming WGSL sum over a buffer of the same size;
//   decode attention per layer of the Llama-3-8B shape (32 query heads, 8 KV heads, head dim 128),
//   dense over n tokens vs gathered over a 2k-token selection, and the selection chains: per-key scores
//   + top-k, TokenSelect's step (every head's scores, soft vote, top-k, windows), and Quest's (Tang et al.
//   2024, sec. 3) page bounds + top pages, each then gathered attention; the one-workgroup top-k beside
//   the multi-workgroup one.
// Every timed kernel's output is checked against a CPU computation first.
// `node dist/bench/webgpu.js [--full]`: --full uses 512 MiB of keys and 32k/128k tokens (a GPU with
// 2 GiB storage bindings); without it, small sizes that run on lavapipe in seconds.
import { pathToFileURL } from 'node:url'
import { openGpuDevice, WebGpuUnavailableError } from '../src/backend/webgpu/device.js'
import { attendScratchWords, attendSplit, WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { DEFAULT_SCORE_VARIANT, SCORE_VARIANTS, type ScoreVariant } from '../src/backend/webgpu/score-variants.js'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]

/** A byte-pointer bump allocator over one GPU arena buffer (the bench's whole working set). */
export class Bump {
  top = 256
  take(bytes: number): number {
    const p = this.top
    this.top += Math.ceil(bytes / 256) * 256
    return p
  }
}

/** Fills [ptr, ptr + bytes) with normal-ish floats, 16 MiB at a time from one reused CPU block. */
export function fillRandom(k: WebGpuKernels, ptr: number, bytes: number, seed: number): void {
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
export async function time(k: WebGpuKernels, encode: () => void, reps: number, rounds = 7): Promise<number> {
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

/** Attention of `heads` query heads over the listed tokens of one KV head ([n][d] rows), in float64. */
export function cpuAttend(q: Float32Array, heads: number, d: number, K: Float32Array, V: Float32Array, tokens: ArrayLike<number>, scale: number): Float64Array {
  const out = new Float64Array(heads * d)
  const s = new Float64Array(tokens.length)
  for (let h = 0; h < heads; h++) {
    let m = -Infinity
    for (let i = 0; i < tokens.length; i++) {
      let dot = 0
      for (let c = 0; c < d; c++) dot += q[h * d + c] * K[tokens[i] * d + c]
      s[i] = dot * scale
      m = Math.max(m, s[i])
    }
    let l = 0
    for (let i = 0; i < tokens.length; i++) {
      const w = Math.exp(s[i] - m)
      l += w
      for (let c = 0; c < d; c++) out[h * d + c] += w * V[tokens[i] * d + c]
    }
    for (let c = 0; c < d; c++) out[h * d + c] /= l
  }
  return out
}

/** Quest's page bound summed over a group's heads: sum_h sum_c max(q_c kmin_c, q_c kmax_c). */
function cpuQuestBound(q: Float32Array, heads: number, d: number, kmin: ArrayBuffer, kmax: ArrayBuffer, pages: number): Float64Array {
  const lo = new Float32Array(kmin)
  const hi = new Float32Array(kmax)
  const out = new Float64Array(pages)
  for (let p = 0; p < pages; p++) {
    for (let h = 0; h < heads; h++) for (let c = 0; c < d; c++) out[p] += Math.max(q[h * d + c] * lo[p * d + c], q[h * d + c] * hi[p * d + c])
  }
  return out
}

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
    // correctness, every scoring variant: a few scores against a CPU dot product
    const qv = new Float32Array(await k.read(q, group * d * 4))
    const variants = Object.keys(SCORE_VARIANTS) as ScoreVariant[]
    for (const variant of variants) {
      k.scoreVariant = variant
      k.scoreKeys(q, group, d, table, nKeys, nKeys, 0.125, out)
      for (const i of [0, 1, nKeys >> 1, nKeys - 1]) {
        const kv = new Float32Array(await k.read(keys + i * d * 4, d * 4))
        for (let h = 0; h < group; h++) {
          const got = new Float32Array(await k.read(out + (h * nKeys + i) * 4, 4))[0]
          let want = 0
          for (let c = 0; c < d; c++) want += qv[h * d + c] * kv[c]
          if (Math.abs(got - 0.125 * want) > 1e-3 * (1 + Math.abs(want))) throw new Error(`scoreKeys (${variant}) check failed at key ${i} head ${h}: ${got} vs ${0.125 * want}`)
        }
      }
    }
    const reps = full ? 20 : 3
    // the yardstick: the plain streaming sum at the fastest of a few grid sizes (checked against the CPU)
    let tStream = Infinity
    let best = 0
    for (const groups of full ? [2048, 8192, 32768] : [64, 256]) {
      const t = await time(k, () => k.streamSum(keys, nKeys * d, sums, groups), reps)
      if (t < tStream) [tStream, best] = [t, groups]
    }
    k.streamSum(keys, nKeys * d, sums, best)
    const got = new Float32Array(await k.read(sums, best * 256 * 4)).reduce((a, b) => a + b, 0)
    let want = 0
    for (let off = 0; off < keyBytes; off += 64 << 20) for (const v of new Float32Array(await k.read(keys + off, Math.min(64 << 20, keyBytes - off)))) want += v
    if (!(Math.abs(got - want) < 1e-3 * Math.sqrt(nKeys * d))) throw new Error(`streamSum check failed: ${got} vs ${want}`)
    // every scoring variant (src/backend/webgpu/score-variants.ts), 1 head and a GQA group, in this process
    const rows: [ScoreVariant, number, number][] = []
    for (const variant of variants) {
      k.scoreVariant = variant
      const t1 = await time(k, () => k.scoreKeys(q, 1, d, table, nKeys, nKeys, 0.125, out), reps)
      const tg = await time(k, () => k.scoreKeys(q, group, d, table, nKeys, nKeys, 0.125, out), reps)
      rows.push([variant, t1, tg])
    }
    k.scoreVariant = DEFAULT_SCORE_VARIANT
    const mib = keyBytes >> 20
    const row = (what: string, t: number) => `| ${what}, ${nKeys} keys x ${d} | ${(t * 1e6).toFixed(0)} us | ${gbs(keyBytes, t)} GB/s | ${(tStream / t).toFixed(2)} |`
    console.log(`| streaming WGSL sum over ${mib} MiB (${best} workgroups) | ${(tStream * 1e6).toFixed(0)} us | ${gbs(keyBytes, tStream)} GB/s | 1.00 |`)
    // the default's rows first, under the names earlier logs used
    const [, t1, tg] = rows.find(([v]) => v === DEFAULT_SCORE_VARIANT)!
    console.log(row('key scoring, 1 head', t1))
    console.log(row(`key scoring, GQA group of ${group}`, tg))
    for (const [variant, v1, vg] of rows) {
      // the shape this device runs (lanes are capped at its subgroup size), the default marked
      const { lanes, rows: r, groups } = k.scoreShape(variant)
      const name = `key scoring variant ${variant} (${lanes} lanes a row, ${r} row${r > 1 ? 's' : ''} at once, <= ${groups} workgroups${variant === DEFAULT_SCORE_VARIANT ? ', default' : ''})`
      console.log(row(`${name}, 1 head`, v1))
      console.log(row(`${name}, GQA group of ${group}`, vg))
    }
    k.arena = null
    k.pool.release(arena)
  }

  // --- decode attention per layer: 8 KV heads x 4 query heads, dense vs gathered at a 2k budget ---
  const budget = 2048
  const qpage = 16 // Quest's page (the paper's 16 tokens)
  for (const n of full ? [32768, 131072] : [4096, 8192]) {
    const pageTokens = 256
    const pages = n / pageTokens
    const qPages = n / qpage
    const kPages = budget / qpage
    const bump = new Bump()
    const kv = bump.take(2 * kvHeads * n * d * 4)
    const tables = bump.take(2 * kvHeads * pages * 4)
    const q = bump.take(kvHeads * group * d * 4)
    const idx = bump.take(budget * 4)
    const out = bump.take(kvHeads * group * d * 4)
    const lse = bump.take(kvHeads * group * 4)
    const scores = bump.take(group * n * 4)
    const sel = bump.take(budget * 4)
    const scratch = bump.take(attendScratchWords(group, d, n, 16) * 4) // the most splits any row below uses
    const kmin = bump.take(kvHeads * qPages * d * 4)
    const kmax = bump.take(kvHeads * qPages * d * 4)
    const bound = bump.take(qPages * 4)
    const topPages = bump.take(kPages * 4)
    // TokenSelect's step (src/model/gpu-selection.ts): every query head's scores, their soft vote, the list
    const allScores = bump.take(kvHeads * group * n * 4)
    const vote = bump.take(n * 4)
    const voteStats = bump.take(kvHeads * group * 8)
    const list = bump.take(budget * 4)
    const topNew = bump.take(budget * 4)
    const arena = k.pool.acquire(bump.top, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
    k.arena = arena
    fillRandom(k, kv, 2 * kvHeads * n * d * 4, 3)
    fillRandom(k, q, kvHeads * group * d * 4, 4)
    // pages of each stream scattered through the K/V region (reversed), as a paged cache holds them
    const pageAt = (s: number, p: number) => kv + (s * pages + (pages - 1 - p)) * pageTokens * d * 4
    const tab = new Uint32Array(2 * kvHeads * pages)
    for (let s = 0; s < 2 * kvHeads; s++) for (let p = 0; p < pages; p++) tab[s * pages + p] = pageAt(s, p)
    k.write(tables, tab)
    const pick = Int32Array.from({ length: budget }, (_, i) => Math.floor(((i + 0.5) * n) / budget))
    k.write(idx, pick)
    k.write(topPages + (kPages - 1) * 4, Int32Array.of(qPages - 1)) // Quest always keeps the newest page
    const kT = (h: number) => tables + h * pages * 4
    const vT = (h: number) => tables + (kvHeads + h) * pages * 4
    const qh = (h: number) => q + h * group * d * 4
    const summary = (h: number) => h * qPages * d * 4
    const scale = 1 / Math.sqrt(d)
    const attendAll = (list: number, count: number, split?: number) => {
      for (let h = 0; h < kvHeads; h++) k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, list, count, scale, out + h * group * d * 4, lse + h * group * 4, scratch, split)
    }
    // the selection chain of one layer: score every key for each KV head's group, top-k of the first
    // head's row, then attention over the chosen indices
    const selected = () => {
      for (let h = 0; h < kvHeads; h++) {
        k.scoreKeys(qh(h), group, d, kT(h), pageTokens, n, scale, scores)
        k.topK(scores, n, budget, sel)
        k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, sel, budget, scale, out + h * group * d * 4, lse + h * group * 4, scratch)
      }
    }
    // Quest's page summaries, rebuilt from the keys (a decode step only folds its new token in)
    const questBounds = () => {
      for (let h = 0; h < kvHeads; h++) k.pageMinMax(kT(h), pageTokens, n, d, qpage, kmin + summary(h), kmax + summary(h))
    }
    // Quest's step: page bounds of the full pages, their top kPages - 1 plus the newest page, attention
    // over those pages' tokens (src/policies/quest.ts, on the GPU)
    const questStep = () => {
      for (let h = 0; h < kvHeads; h++) {
        k.pageUpperBound(qh(h), group, d, kmin + summary(h), kmax + summary(h), qPages - 1, bound)
        k.topK(bound, qPages - 1, kPages - 1, topPages)
        k.pageTokenIndices(topPages, budget, qpage, sel)
        k.attend(qh(h), group, d, kT(h), vT(h), pageTokens, n, sel, budget, scale, out + h * group * d * 4, lse + h * group * 4, scratch)
      }
    }

    // correctness, KV head 0, against the CPU: dense and gathered attention, Quest's bounds and its output
    const K0 = new Float32Array(n * d)
    const V0 = new Float32Array(n * d)
    for (let p = 0; p < pages; p++) {
      K0.set(new Float32Array(await k.read(pageAt(0, p), pageTokens * d * 4)), p * pageTokens * d)
      V0.set(new Float32Array(await k.read(pageAt(kvHeads, p), pageTokens * d * 4)), p * pageTokens * d)
    }
    const Q0 = new Float32Array(await k.read(qh(0), group * d * 4))
    const head0 = async () => new Float32Array(await k.read(out, group * d * 4))
    const check = (what: string, got: Float32Array, tokens: ArrayLike<number>) => {
      const want = cpuAttend(Q0, group, d, K0, V0, tokens, scale)
      const worst = got.reduce((m, x, i) => Math.max(m, Math.abs(x - want[i])), 0)
      if (!(worst < 1e-4)) throw new Error(`${what}: differs from the CPU by ${worst}`)
    }
    attendAll(0, 0)
    check(`attend dense n=${n}`, await head0(), Array.from({ length: n }, (_, i) => i))
    attendAll(idx, budget)
    check(`attend gathered ${budget}`, await head0(), pick)
    selected()
    {
      // the top-k of the last head's first score row: no unchosen key scores above a chosen one
      const row = new Float32Array(await k.read(scores, n * 4))
      const picked = new Int32Array(await k.read(sel, budget * 4))
      const inSel = new Uint8Array(n)
      for (const i of picked) inSel[i] = 1
      let lowIn = Infinity
      let highOut = -Infinity
      for (let i = 0; i < n; i++) if (inSel[i]) lowIn = Math.min(lowIn, row[i]); else highOut = Math.max(highOut, row[i])
      if (new Set(picked).size !== budget || !(lowIn >= highOut)) throw new Error('topK: the selection is not the top of the scores')
    }
    // the multi-workgroup top-k picks the one-workgroup kernel's indices (both exact, the same tie rule)
    k.topK(scores, n, budget, sel)
    k.topKRows(scores, 1, n, n, budget, topNew, budget)
    {
      const a = new Int32Array(await k.read(sel, budget * 4))
      const b = new Int32Array(await k.read(topNew, budget * 4))
      if (a.some((v, i) => v !== b[i])) throw new Error(`topKRows: differs from topK at n=${n}`)
    }
    // TokenSelect's step with the paper's windows (first 128, last 512; Wu et al. 2025, sec. 3.2), the
    // Selection Cache off (a miss every step); `multi`: the multi-workgroup top-k, else the one-workgroup one
    // (timing only: its indices lack the offset of the first window)
    const tsFirst = 128
    const tsLast = 512
    const tsK = budget - tsFirst - tsLast
    const tokenSelect = (multi: boolean) => () => {
      for (let h = 0; h < kvHeads; h++) k.scoreKeys(qh(h), group, d, kT(h), pageTokens, n, scale, allScores + h * group * n * 4)
      k.softVote(allScores, kvHeads * group, n, vote, voteStats)
      if (multi) k.topKRows(vote + tsFirst * 4, 1, n, n - tsFirst - tsLast, tsK, list + tsFirst * 4, budget, tsFirst)
      else k.topK(vote + tsFirst * 4, n - tsFirst - tsLast, tsK, list + tsFirst * 4)
      k.selectionWindows(list, 1, budget, n, tsFirst, tsLast, tsK)
      attendAll(list, budget)
    }
    tokenSelect(true)()
    {
      // the list: the windows and the top of the vote between them (ties to the lower slot), as the CPU picks it
      const v = new Float32Array(await k.read(vote, n * 4))
      const got = new Int32Array(await k.read(list, budget * 4))
      const mid = Array.from({ length: n - tsFirst - tsLast }, (_, i) => i + tsFirst).sort((a, b) => v[b] - v[a] || a - b).slice(0, tsK).sort((a, b) => a - b)
      const want = [...Array.from({ length: tsFirst }, (_, i) => i), ...mid, ...Array.from({ length: tsLast }, (_, i) => n - tsLast + i)]
      if (want.some((x, i) => x !== got[i])) throw new Error(`TokenSelect step: the list differs from the CPU's at n=${n}`)
    }
    questBounds()
    {
      // head 0's page minima and maxima against the keys
      const lo = new Float32Array(await k.read(kmin, qPages * d * 4))
      const hi = new Float32Array(await k.read(kmax, qPages * d * 4))
      for (let p = 0; p < qPages; p++) {
        for (let c = 0; c < d; c++) {
          let a = Infinity
          let b = -Infinity
          for (let t = p * qpage; t < (p + 1) * qpage; t++) [a, b] = [Math.min(a, K0[t * d + c]), Math.max(b, K0[t * d + c])]
          if (lo[p * d + c] !== a || hi[p * d + c] !== b) throw new Error(`pageMinMax: page ${p} channel ${c}`)
        }
      }
    }
    questStep()
    const gotBound = new Float32Array(await k.read(bound, (qPages - 1) * 4))
    const chosen = new Int32Array(await k.read(sel, budget * 4))
    // questStep ends with head kvHeads - 1; run head 0 alone for its output
    k.pageUpperBound(qh(0), group, d, kmin, kmax, qPages - 1, bound)
    k.topK(bound, qPages - 1, kPages - 1, topPages)
    k.pageTokenIndices(topPages, budget, qpage, sel)
    k.attend(qh(0), group, d, kT(0), vT(0), pageTokens, n, sel, budget, scale, out, lse, scratch)
    const chosen0 = new Int32Array(await k.read(sel, budget * 4))
    check('Quest chain', await head0(), chosen0)
    const wantBound = cpuQuestBound(new Float32Array(await k.read(qh(kvHeads - 1), group * d * 4)), group, d, await k.read(kmin + summary(kvHeads - 1), qPages * d * 4), await k.read(kmax + summary(kvHeads - 1), qPages * d * 4), qPages - 1)
    for (let p = 0; p < qPages - 1; p++) if (!(Math.abs(gotBound[p] - wantBound[p]) < 1e-3 * (1 + Math.abs(wantBound[p])))) throw new Error(`pageUpperBound: page ${p}: ${gotBound[p]} vs ${wantBound[p]}`)
    if (chosen[budget - 1] !== n - 1 || new Set(chosen).size !== budget) throw new Error('Quest chain: the chosen tokens are not kPages whole pages ending with the newest')

    const reps = full ? 10 : 2
    const tDense = await time(k, () => attendAll(0, 0), reps)
    const tGather = await time(k, () => attendAll(idx, budget), reps)
    // the split-size trade-off (more workgroups against more partials to merge), measured beside the default
    const sweep: [string, number, number][] = []
    for (const [list, count] of [[0, n], [idx, budget]]) {
      for (const split of [16, 64, 256]) {
        if (split === attendSplit(count) || count / split > 2048) continue
        const what = `${list ? `gathered ${budget}` : 'dense'}, split ${split}`
        attendAll(list, list ? count : 0, split)
        check(`attend ${what}`, await head0(), list ? pick : Array.from({ length: n }, (_, i) => i))
        sweep.push([what, split, await time(k, () => attendAll(list, list ? count : 0, split), reps)])
      }
    }
    const tSel = await time(k, selected, full ? 3 : 1, full ? 5 : 3)
    const tBounds = await time(k, questBounds, full ? 3 : 1, full ? 5 : 3)
    const tQuest = await time(k, questStep, reps)
    const tTopOne = await time(k, () => k.topK(scores, n, budget, sel), reps)
    const tTopMulti = await time(k, () => k.topKRows(scores, 1, n, n, budget, topNew, budget), reps)
    const tTsOne = await time(k, tokenSelect(false), reps)
    const tTsMulti = await time(k, tokenSelect(true), reps)
    const kvBytes = 2 * kvHeads * n * d * 4
    const us = (t: number) => `${(t * 1e6).toFixed(0)} us`
    console.log(`| attention per layer, n=${n}, dense (split ${attendSplit(n)}) | ${us(tDense)} | ${gbs(kvBytes, tDense)} GB/s of K+V | 1.00 |`)
    console.log(`| attention per layer, n=${n}, gathered ${budget} (split ${attendSplit(budget)}) | ${us(tGather)} | | ${(tDense / tGather).toFixed(1)}x faster (b/n = ${(budget / n).toFixed(3)}) |`)
    for (const [what, , t] of sweep) console.log(`| attention per layer, n=${n}, ${what} | ${us(t)} | | ${(tDense / t).toFixed(2)}x the default dense |`)
    console.log(`| score + top-${budget} + gathered attention per layer, n=${n} | ${us(tSel)} | | ${(tDense / tSel).toFixed(2)}x dense |`)
    console.log(`| top-${budget} of ${n} scores, one workgroup (wgsl/topk.wgsl) | ${us(tTopOne)} | | 1.00 |`)
    console.log(`| top-${budget} of ${n} scores, multi-workgroup radix select (wgsl/topk_radix.wgsl) | ${us(tTopMulti)} | | ${(tTopOne / tTopMulti).toFixed(1)}x the one-workgroup top-k |`)
    console.log(`| TokenSelect step per layer, n=${n}: ${kvHeads * group} heads' scores + soft vote + top-${tsK} (one workgroup) + windows + gathered attention | ${us(tTsOne)} | | ${(tDense / tTsOne).toFixed(2)}x dense |`)
    console.log(`| TokenSelect step per layer, n=${n}, the same with the multi-workgroup top-k (the runtime's) | ${us(tTsMulti)} | | ${(tDense / tTsMulti).toFixed(2)}x dense |`)
    console.log(`| Quest step per layer, n=${n}: page bounds + top-${kPages} pages of ${qpage} + gathered attention | ${us(tQuest)} | | ${(tDense / tQuest).toFixed(2)}x dense |`)
    console.log(`| Quest page min/max rebuilt from the keys per layer, n=${n} (not per step) | ${us(tBounds)} | ${gbs(kvBytes / 2, tBounds)} GB/s of K | |`)
    k.arena = null
    k.pool.release(arena)
  }
  k.destroy()
  gpu.destroy()
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await run()

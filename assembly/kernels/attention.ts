import { madd, dot, rowAt, touch } from './simd'
import { scoreTile } from './tiles'
import { foldScores } from './online-softmax'

// The attention kernel family, decode half (attention-causal.ts holds causal prefill; both fold scores
// through online-softmax.ts). Decode attention for one query step: the qHeads query heads of a GQA group
// against one KV head, densely, over a gathered list of token indices (selection policies attend to b of
// n tokens), or over a list of pages (the caller passes a page table listing just those pages, which the
// kernel reads exactly as a dense table). Selecting every token in order is dense attention bit for bit:
// blocks are cut in selection order, so the same rows meet the same arithmetic.
//
// Online softmax in blocks of BLOCK tokens: the block's row pointers are collected first (from pages
// or from the index list: the one place dense and gathered differ), the group's scores for the block
// come from the register tiles shared with scoreKeys, then each head rescales its running output once
// per block by exp(m_old - m_new) and adds sum_j p_j v_j with the output chunk held in registers.
// Heads go in groups of GROUP so the block's K/V rows are read from memory once for the whole group.
// Running max, sum, block scores and row pointers live in static blocks: kernels allocate nothing.

const GROUP = 8
const BLOCK = 16
const runMax = memory.data(GROUP * 4, 16)
const runSum = memory.data(GROUP * 4, 16)
const scores = memory.data(GROUP * BLOCK * 4, 16)
const kRows = memory.data(BLOCK * 4, 16)
const vRows = memory.data(BLOCK * 4, 16)

// @ts-ignore: decorator
@inline function rowPtr(rows: usize, j: i32): usize {
  return <usize>load<u32>(rows + (<usize>j << 2))
}

/** o[c..c+4*W] = o * corr + sum_j p_j v_j[c..] for the block, W vectors at a time in registers. */
function accumulate(o: usize, corr: f32, p: usize, bn: i32, d: i32): void {
  const vc = f32x4.splat(corr)
  let c = 0
  for (; c + 16 <= d; c += 16) {
    const off = <usize>c << 2
    let a0 = f32x4.mul(v128.load(o + off), vc)
    let a1 = f32x4.mul(v128.load(o + off + 16), vc)
    let a2 = f32x4.mul(v128.load(o + off + 32), vc)
    let a3 = f32x4.mul(v128.load(o + off + 48), vc)
    for (let j = 0; j < bn; j++) {
      const pj = v128.load32_splat(p + (<usize>j << 2))
      const v = rowPtr(vRows, j) + off
      a0 = madd(pj, v128.load(v), a0)
      a1 = madd(pj, v128.load(v + 16), a1)
      a2 = madd(pj, v128.load(v + 32), a2)
      a3 = madd(pj, v128.load(v + 48), a3)
    }
    v128.store(o + off, a0)
    v128.store(o + off + 16, a1)
    v128.store(o + off + 32, a2)
    v128.store(o + off + 48, a3)
  }
  for (; c + 4 <= d; c += 4) {
    const off = <usize>c << 2
    let a0 = f32x4.mul(v128.load(o + off), vc)
    for (let j = 0; j < bn; j++) a0 = madd(v128.load32_splat(p + (<usize>j << 2)), v128.load(rowPtr(vRows, j) + off), a0)
    v128.store(o + off, a0)
  }
  for (; c < d; c++) {
    const off = <usize>c << 2
    let a = load<f32>(o + off) * corr
    for (let j = 0; j < bn; j++) a += load<f32>(p + (<usize>j << 2)) * load<f32>(rowPtr(vRows, j) + off)
    store<f32>(o + off, a)
  }
}

/** Scores of the block's bn rows for heads h0 .. h0+g into scores[h][j]. */
function blockScores(q: usize, g: i32, d: i32, bn: i32, scale: f32): void {
  const vscale = f32x4.splat(scale)
  const outStride = <usize>BLOCK << 2
  let j = 0
  for (; j + 4 <= bn; j += 4) {
    scoreTile<f32>(q, g, rowPtr(kRows, j), rowPtr(kRows, j + 1), rowPtr(kRows, j + 2), rowPtr(kRows, j + 3), d, vscale, scores + (<usize>j << 2), outStride)
  }
  for (; j < bn; j++) {
    for (let h = 0; h < g; h++) {
      store<f32>(scores + <usize>h * outStride + (<usize>j << 2), scale * dot(q + (<usize>(h * d) << 2), rowPtr(kRows, j), d))
    }
  }
}

/** Folds the block into head h's running max, sum and output. */
// @ts-ignore: decorator
@inline function foldBlock(h: i32, o: usize, bn: i32, d: i32): void {
  const s = scores + (<usize>(h * BLOCK) << 2)
  const corr = foldScores(s, bn, runMax + (<usize>h << 2), runSum + (<usize>h << 2))
  accumulate(o, corr, s, bn, d)
}

export function attend(
  q: usize, qHeads: i32, d: i32,
  kTable: usize, vTable: usize, pageTokens: i32, n: i32,
  idx: usize, nIdx: i32, scale: f32, out: usize, lse: usize,
): void {
  const count = idx == 0 ? n : nIdx
  const rowBytes = <usize>d << 2
  for (let h0 = 0; h0 < qHeads; h0 += GROUP) {
    const g = min(GROUP, qHeads - h0)
    const qg = q + (<usize>(h0 * d) << 2)
    const og = out + (<usize>(h0 * d) << 2)
    for (let h = 0; h < g; h++) {
      store<f32>(runMax + (<usize>h << 2), -Infinity)
      store<f32>(runSum + (<usize>h << 2), 0)
    }
    memory.fill(og, 0, <usize>(g * d) << 2)
    for (let j0 = 0; j0 < count; j0 += BLOCK) {
      const bn = min(BLOCK, count - j0)
      for (let j = 0; j < bn; j++) {
        const t = idx == 0 ? j0 + j : load<i32>(idx + (<usize>(j0 + j) << 2))
        const k = rowAt(kTable, pageTokens, d, t)
        const v = rowAt(vTable, pageTokens, d, t)
        touch(k, rowBytes)
        touch(v, rowBytes)
        store<u32>(kRows + (<usize>j << 2), <u32>k)
        store<u32>(vRows + (<usize>j << 2), <u32>v)
      }
      blockScores(qg, g, d, bn, scale)
      for (let h = 0; h < g; h++) foldBlock(h, og + (<usize>(h * d) << 2), bn, d)
    }
    for (let h = 0; h < g; h++) {
      const l = load<f32>(runSum + (<usize>h << 2))
      const o = og + (<usize>(h * d) << 2)
      const inv = f32x4.splat(1 / l)
      let c = 0
      for (; c + 4 <= d; c += 4) v128.store(o + (<usize>c << 2), f32x4.mul(v128.load(o + (<usize>c << 2)), inv))
      for (; c < d; c++) store<f32>(o + (<usize>c << 2), load<f32>(o + (<usize>c << 2)) / l)
      store<f32>(lse + (<usize>(h0 + h) << 2), load<f32>(runMax + (<usize>h << 2)) + Mathf.log(l))
    }
  }
}

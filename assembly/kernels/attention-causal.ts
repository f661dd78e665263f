import { madd, hsum, load4, load1, rowAtK, elemOff } from './simd'
import { exp1 } from './exp'
import { foldScores } from './online-softmax'

// The attention kernel family, causal half: prefill chunks attend over the cache (attention.ts holds
// decode). Score blocks fold through the same online-softmax step as decode attention.

/**
 * Keys per tile. A tile's rows are collected as pointers first (from the page table, or from a token
 * list: the one place dense and gathered differ), and tiles are cut every TILE positions of the row
 * sequence, so attending to a list of every token in order is dense attention bit for bit.
 */
const TILE = 64
// Globals are per instance, memory is shared: with the threads build every worker's instance points these
// at its own arena block (useThreadScratch), so concurrent calls never share the pointer lists.
let kPtrs: usize = memory.data(TILE * 8, 16)
let vPtrs: usize = kPtrs + TILE * 4
/**
 * Points this instance's tile row-pointer lists at `ptr` (TILE * 8 = 512 bytes, 16-aligned, owned by
 * the caller): each worker instance of the threads build calls it once, so no two threads share the lists.
 */
export function useThreadScratch(ptr: usize): void {
  kPtrs = ptr
  vPtrs = ptr + TILE * 4
}

/** pointers of rows j0 .. j0+len of the sequence (token j, or idx[j] when idx != 0) into kPtrs and vPtrs */
// @ts-ignore: decorator
@inline function collect<K>(kTable: usize, vTable: usize, pageTokens: i32, kd: i32, vd: i32, idx: usize, j0: i32, len: i32): void {
  for (let j = 0; j < len; j++) {
    const t = idx == 0 ? j0 + j : load<i32>(idx + (<usize>(j0 + j) << 2))
    store<u32>(kPtrs + (<usize>j << 2), <u32>rowAtK<K>(kTable, pageTokens, kd, t))
    if (vTable) store<u32>(vPtrs + (<usize>j << 2), <u32>rowAtK<K>(vTable, pageTokens, vd, t))
  }
}

/**
 * Scores of 4 query rows against `len` contiguous key rows: S[i][j] = scale * q_i . k_j.
 * Two keys at a time: 8 accumulators, each key row loaded (and widened, for float16 rows) once for the 4 queries.
 */
// @ts-ignore: decorator
@inline function scoreTile<K>(q0: usize, q1: usize, q2: usize, q3: usize, kd: i32, len: i32, S: usize, scale: f32): void {
  const k4 = kd & ~3
  let j = 0
  for (; j + 2 <= len; j += 2) {
    const ka = <usize>load<u32>(kPtrs + (<usize>j << 2))
    const kb = <usize>load<u32>(kPtrs + (<usize>j << 2), 4)
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
    let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0)
    for (let c = 0; c < k4; c += 4) {
      const off = <usize>c << 2
      const x = load4<K>(ka + elemOff<K>(c))
      const y = load4<K>(kb + elemOff<K>(c))
      const u0 = v128.load(q0 + off)
      a0 = madd(u0, x, a0); b0 = madd(u0, y, b0)
      const u1 = v128.load(q1 + off)
      a1 = madd(u1, x, a1); b1 = madd(u1, y, b1)
      const u2 = v128.load(q2 + off)
      a2 = madd(u2, x, a2); b2 = madd(u2, y, b2)
      const u3 = v128.load(q3 + off)
      a3 = madd(u3, x, a3); b3 = madd(u3, y, b3)
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3)
    let t0 = hsum(b0), t1 = hsum(b1), t2 = hsum(b2), t3 = hsum(b3)
    for (let c = k4; c < kd; c++) {
      const off = <usize>c << 2
      const x = load1<K>(ka + elemOff<K>(c)), y = load1<K>(kb + elemOff<K>(c))
      const u0 = load<f32>(q0 + off), u1 = load<f32>(q1 + off), u2 = load<f32>(q2 + off), u3 = load<f32>(q3 + off)
      s0 += u0 * x; s1 += u1 * x; s2 += u2 * x; s3 += u3 * x
      t0 += u0 * y; t1 += u1 * y; t2 += u2 * y; t3 += u3 * y
    }
    const sp = S + (<usize>j << 2)
    store<f32>(sp, s0 * scale); store<f32>(sp, t0 * scale, 4)
    store<f32>(sp + TILE * 4, s1 * scale); store<f32>(sp + TILE * 4, t1 * scale, 4)
    store<f32>(sp + TILE * 8, s2 * scale); store<f32>(sp + TILE * 8, t2 * scale, 4)
    store<f32>(sp + TILE * 12, s3 * scale); store<f32>(sp + TILE * 12, t3 * scale, 4)
  }
  for (; j < len; j++) {
    const ka = <usize>load<u32>(kPtrs + (<usize>j << 2))
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0)
    for (let c = 0; c < k4; c += 4) {
      const off = <usize>c << 2
      const x = load4<K>(ka + elemOff<K>(c))
      a0 = madd(v128.load(q0 + off), x, a0)
      a1 = madd(v128.load(q1 + off), x, a1)
      a2 = madd(v128.load(q2 + off), x, a2)
      a3 = madd(v128.load(q3 + off), x, a3)
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3)
    for (let c = k4; c < kd; c++) {
      const off = <usize>c << 2
      const x = load1<K>(ka + elemOff<K>(c))
      s0 += load<f32>(q0 + off) * x; s1 += load<f32>(q1 + off) * x
      s2 += load<f32>(q2 + off) * x; s3 += load<f32>(q3 + off) * x
    }
    const sp = S + (<usize>j << 2)
    store<f32>(sp, s0 * scale)
    store<f32>(sp + TILE * 4, s1 * scale)
    store<f32>(sp + TILE * 8, s2 * scale)
    store<f32>(sp + TILE * 12, s3 * scale)
  }
}

// @ts-ignore: decorator
@inline function rowPtr(base: usize, r: i32, hq: i32, stride: i32, d: i32): usize {
  const t = r / hq
  return base + (<usize>(t * stride + (r - t * hq) * d) << 2)
}

/**
 * Causal attention of a chunk of T tokens x hq query heads (the heads sharing one KV head) over n cached
 * keys and values read through page tables, flash style: an online softmax over key tiles, so memory is
 * O(T x d), never O(T x n). Query row r = t * hq + h sits at q + (t * qStride + h * kd) floats and sees the
 * first min(n, visible0 + t) keys (visible0 = n - T + 1 for a chunk just appended; n for "sees all").
 * Keys have kd floats per row (fewer than vd after channel pruning), values vd.
 * Key tiles are the outer loop: a tile of 64 keys and values stays in L1 while every row block of the
 * chunk uses it; the rows' running max, sum and output live in scratch.
 * Writes out rows (t * outStride + h * vd) and, when lse != 0, lse[r] = log-sum-exp of the row's scores.
 * scratch: 256 + R4 * (vd + 2) floats, R4 = T * hq rounded up to a multiple of 4.
 */
export function attendCausal(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, n: i32, visible0: i32, scale: f32,
  out: usize, outStride: i32, lse: usize, scratch: usize,
): void {
  attendRows<f32>(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, 0, scale, out, outStride, lse, scratch)
}

/**
 * attendCausal for T tokens at scattered positions (CacheBlend's recompute of the chosen rows, each over
 * every slot up to its own): token t sees the first ends[t] keys (int32 at `ends`, non-decreasing), the
 * rest as attendCausal. One call takes the tokens that were one call a run of consecutive slots, so each
 * key tile is loaded once for all of them; a token's output and lse are bit for bit those of an
 * attendCausal call in which it sees as many keys (the same tiles, folds and sums, row by row).
 */
export function attendCausalRows(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, ends: usize, scale: f32,
  out: usize, outStride: i32, lse: usize, scratch: usize,
): void {
  attendRows<f32>(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, i32.MAX_VALUE, 0, 0, scale, out, outStride, lse, scratch, ends)
}

/** attendCausal over float16 key and value pages (widened in registers as they are read) */
export function attendCausalF16(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, n: i32, visible0: i32, scale: f32,
  out: usize, outStride: i32, lse: usize, scratch: usize,
): void {
  attendRows<u16>(q, qStride, hq, T, kd, vd, kTable, vTable, pageTokens, n, visible0, 0, scale, out, outStride, lse, scratch)
}

/**
 * Decode attention (one query step, hq query heads) over the nIdx tokens listed at idx (int32, in the
 * order given), through attendCausal's tiles: listing every token in order gives attendCausal with
 * T = 1 bit for bit. Arguments as attendCausal; lse [hq] when lse != 0.
 */
export function attendGathered(
  q: usize, hq: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, idx: usize, nIdx: i32, scale: f32,
  out: usize, lse: usize, scratch: usize,
): void {
  attendRows<f32>(q, hq * kd, hq, 1, kd, vd, kTable, vTable, pageTokens, nIdx, nIdx, idx, scale, out, hq * vd, lse, scratch)
}

/** attendGathered over float16 key and value pages */
export function attendGatheredF16(
  q: usize, hq: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, idx: usize, nIdx: i32, scale: f32,
  out: usize, lse: usize, scratch: usize,
): void {
  attendRows<u16>(q, hq * kd, hq, 1, kd, vd, kTable, vTable, pageTokens, nIdx, nIdx, idx, scale, out, hq * vd, lse, scratch)
}

/** the keys token t sees: ends[t] when ends != 0 (attendCausalRows), else min(n, visible0 + t) */
// @ts-ignore: decorator
@inline function seen(n: i32, visible0: i32, ends: usize, t: i32): i32 {
  return ends ? load<i32>(ends + (<usize>t << 2)) : min(n, visible0 + t)
}

function attendRows<K>(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32, vd: i32,
  kTable: usize, vTable: usize, pageTokens: i32, n: i32, visible0: i32, idx: usize, scale: f32,
  out: usize, outStride: i32, lse: usize, scratch: usize, ends: usize = 0,
): void {
  const R = T * hq
  const R4 = (R + 3) & ~3
  const S = scratch
  const O = scratch + TILE * 16
  const M = O + (<usize>(R4 * vd) << 2)
  const Lsum = M + (<usize>R4 << 2)
  const vRow = <usize>vd << 2
  const v4 = vd & ~3
  const v8 = vd & ~7
  memory.fill(O, 0, <usize>(R4 * vd) << 2)
  for (let r = 0; r < R4; r++) {
    store<f32>(M + (<usize>r << 2), -Infinity)
    store<f32>(Lsum + (<usize>r << 2), 0)
  }
  const maxAll = seen(n, visible0, ends, T - 1)
  for (let j0 = 0; j0 < maxAll; ) {
    const len = min(TILE, maxAll - j0)
    collect<K>(kTable, vTable, pageTokens, kd, vd, idx, j0, len)
    for (let r0 = 0; r0 < R; r0 += 4) {
      const nr = min(4, R - r0)
      // rows are t-major, so the block's last row has the widest view
      if (seen(n, visible0, ends, (r0 + nr - 1) / hq) <= j0) continue
      const q0 = rowPtr(q, r0, hq, qStride, kd)
      const q1 = nr > 1 ? rowPtr(q, r0 + 1, hq, qStride, kd) : q0
      const q2 = nr > 2 ? rowPtr(q, r0 + 2, hq, qStride, kd) : q0
      const q3 = nr > 3 ? rowPtr(q, r0 + 3, hq, qStride, kd) : q0
      scoreTile<K>(q0, q1, q2, q3, kd, len, S, scale)
      // online softmax per row: S becomes the tile's unnormalized probabilities (0 where masked)
      for (let i = 0; i < 4; i++) {
        const r = r0 + i
        const lim = i < nr ? seen(n, visible0, ends, r / hq) : 0
        const valid = max(0, min(len, lim - j0))
        const Si = S + (<usize>(i * TILE) << 2)
        if (valid == 0) {
          memory.fill(Si, 0, <usize>len << 2)
          continue
        }
        const alpha = foldScores(Si, valid, M + (<usize>r << 2), Lsum + (<usize>r << 2))
        // foldScores zeroed the lanes up to a multiple of 4; the value loop reads the whole tile
        for (let j = (valid + 3) & ~3; j < len; j++) store<f32>(Si + (<usize>j << 2), 0)
        if (alpha != 1) {
          const Oi = O + (<usize>(r * vd) << 2)
          const av = f32x4.splat(alpha)
          for (let c = 0; c < v4; c += 4) v128.store(Oi + (<usize>c << 2), f32x4.mul(v128.load(Oi + (<usize>c << 2)), av))
          for (let c = v4; c < vd; c++) store<f32>(Oi + (<usize>c << 2), load<f32>(Oi + (<usize>c << 2)) * alpha)
        }
      }
      // O_r += sum_j p_rj v_j: 4 rows x 8 channels a pass, each splat probability used twice
      const O0 = O + (<usize>(r0 * vd) << 2)
      const O1 = O0 + vRow, O2 = O1 + vRow, O3 = O2 + vRow
      const S1 = S + TILE * 4, S2 = S1 + TILE * 4, S3 = S2 + TILE * 4
      for (let c = 0; c < v8; c += 8) {
        const off = <usize>c << 2
        let a0 = v128.load(O0 + off), a1 = v128.load(O1 + off), a2 = v128.load(O2 + off), a3 = v128.load(O3 + off)
        let b0 = v128.load(O0 + off, 16), b1 = v128.load(O1 + off, 16), b2 = v128.load(O2 + off, 16), b3 = v128.load(O3 + off, 16)
        for (let j = 0; j < len; j++) {
          const vrow = <usize>load<u32>(vPtrs + (<usize>j << 2)) + elemOff<K>(c)
          const x = load4<K>(vrow)
          const y = load4<K>(vrow + elemOff<K>(4))
          const jo = <usize>j << 2
          const p0 = v128.load32_splat(S + jo)
          a0 = madd(p0, x, a0); b0 = madd(p0, y, b0)
          const p1 = v128.load32_splat(S1 + jo)
          a1 = madd(p1, x, a1); b1 = madd(p1, y, b1)
          const p2 = v128.load32_splat(S2 + jo)
          a2 = madd(p2, x, a2); b2 = madd(p2, y, b2)
          const p3 = v128.load32_splat(S3 + jo)
          a3 = madd(p3, x, a3); b3 = madd(p3, y, b3)
        }
        v128.store(O0 + off, a0); v128.store(O1 + off, a1); v128.store(O2 + off, a2); v128.store(O3 + off, a3)
        v128.store(O0 + off, b0, 16); v128.store(O1 + off, b1, 16); v128.store(O2 + off, b2, 16); v128.store(O3 + off, b3, 16)
      }
      for (let c = v8; c < v4; c += 4) {
        const off = <usize>c << 2
        let a0 = v128.load(O0 + off), a1 = v128.load(O1 + off), a2 = v128.load(O2 + off), a3 = v128.load(O3 + off)
        for (let j = 0; j < len; j++) {
          const v = load4<K>(<usize>load<u32>(vPtrs + (<usize>j << 2)) + elemOff<K>(c))
          const jo = <usize>j << 2
          a0 = madd(v128.load32_splat(S + jo), v, a0)
          a1 = madd(v128.load32_splat(S1 + jo), v, a1)
          a2 = madd(v128.load32_splat(S2 + jo), v, a2)
          a3 = madd(v128.load32_splat(S3 + jo), v, a3)
        }
        v128.store(O0 + off, a0); v128.store(O1 + off, a1); v128.store(O2 + off, a2); v128.store(O3 + off, a3)
      }
      for (let c = v4; c < vd; c++) {
        const off = <usize>c << 2
        let a0 = load<f32>(O0 + off), a1 = load<f32>(O1 + off), a2 = load<f32>(O2 + off), a3 = load<f32>(O3 + off)
        for (let j = 0; j < len; j++) {
          const v = load1<K>(<usize>load<u32>(vPtrs + (<usize>j << 2)) + elemOff<K>(c))
          const jo = <usize>j << 2
          a0 += load<f32>(S + jo) * v; a1 += load<f32>(S1 + jo) * v
          a2 += load<f32>(S2 + jo) * v; a3 += load<f32>(S3 + jo) * v
        }
        store<f32>(O0 + off, a0); store<f32>(O1 + off, a1); store<f32>(O2 + off, a2); store<f32>(O3 + off, a3)
      }
    }
    j0 += len
  }
  for (let r = 0; r < R; r++) {
    const l = load<f32>(Lsum + (<usize>r << 2))
    const m = load<f32>(M + (<usize>r << 2))
    const inv: f32 = l > 0 ? 1 / l : 0
    const Oi = O + (<usize>(r * vd) << 2)
    const dst = rowPtr(out, r, hq, outStride, vd)
    const iv = f32x4.splat(inv)
    for (let c = 0; c < v4; c += 4) v128.store(dst + (<usize>c << 2), f32x4.mul(v128.load(Oi + (<usize>c << 2)), iv))
    for (let c = v4; c < vd; c++) store<f32>(dst + (<usize>c << 2), load<f32>(Oi + (<usize>c << 2)) * inv)
    if (lse) store<f32>(lse + (<usize>r << 2), l > 0 ? m + Mathf.log(l) : -Infinity)
  }
}

/**
 * H2O's heavy-hitter score without an n x n matrix: mass[j] += sum over rows r of exp(scale q_r . k_j - lse[r])
 * for the keys row r sees (same rows, tiles and visibility as attendCausal, lse from its output).
 * scratch: 4 * 64 floats.
 */
export function attentionMass(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32,
  kTable: usize, pageTokens: i32, n: i32, visible0: i32, scale: f32,
  lse: usize, mass: usize, scratch: usize,
): void {
  massRows<f32>(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch)
}

/** attentionMass over float16 key pages */
export function attentionMassF16(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32,
  kTable: usize, pageTokens: i32, n: i32, visible0: i32, scale: f32,
  lse: usize, mass: usize, scratch: usize,
): void {
  massRows<u16>(q, qStride, hq, T, kd, kTable, pageTokens, n, visible0, scale, lse, mass, scratch)
}

function massRows<K>(
  q: usize, qStride: i32, hq: i32, T: i32, kd: i32,
  kTable: usize, pageTokens: i32, n: i32, visible0: i32, scale: f32,
  lse: usize, mass: usize, scratch: usize,
): void {
  const R = T * hq
  const S = scratch
  for (let r0 = 0; r0 < R; r0 += 4) {
    const nr = min(4, R - r0)
    const q0 = rowPtr(q, r0, hq, qStride, kd)
    const q1 = nr > 1 ? rowPtr(q, r0 + 1, hq, qStride, kd) : q0
    const q2 = nr > 2 ? rowPtr(q, r0 + 2, hq, qStride, kd) : q0
    const q3 = nr > 3 ? rowPtr(q, r0 + 3, hq, qStride, kd) : q0
    const maxLim = min(n, visible0 + (r0 + nr - 1) / hq)
    for (let j0 = 0; j0 < maxLim; ) {
      const len = min(TILE, maxLim - j0)
      collect<K>(kTable, 0, pageTokens, kd, 0, 0, j0, len)
      scoreTile<K>(q0, q1, q2, q3, kd, len, S, scale)
      for (let i = 0; i < nr; i++) {
        const lim = min(n, visible0 + (r0 + i) / hq)
        const valid = max(0, min(len, lim - j0))
        const Si = S + (<usize>(i * TILE) << 2)
        const l = load<f32>(lse + (<usize>(r0 + i) << 2))
        for (let j = 0; j < valid; j++) {
          const mp = mass + (<usize>(j0 + j) << 2)
          store<f32>(mp, load<f32>(mp) + exp1(load<f32>(Si + (<usize>j << 2)) - l))
        }
      }
      j0 += len
    }
  }
}

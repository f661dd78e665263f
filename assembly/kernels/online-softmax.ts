import { hsum, laneMax } from './simd'
import { expv, exp1 } from './exp'

// The online softmax step both attention kernels (decode and causal prefill) fold their score blocks
// with, so the two agree on every rounding: one block max, one correction, one exp, one lane sum.

/**
 * Folds a block of `valid` scores at s into a row's running max (at mp) and sum (at lp): the scores
 * become exp(s - m_new) in place, and the return value exp(m_old - m_new) is what the row's running
 * output must be multiplied by before the block's p_j v_j are added (0 on the first block, exactly 1
 * when the max did not move). s is padded with -inf up to a multiple of 4 (the caller's buffer has
 * that room), and those lanes come out as 0. valid >= 1.
 */
export function foldScores(s: usize, valid: i32, mp: usize, lp: usize): f32 {
  const v4 = (valid + 3) & ~3
  for (let j = valid; j < v4; j++) store<f32>(s + (<usize>j << 2), -Infinity)
  // pmax: one instruction (max pays for NaN and -0 rules that scores do not need)
  let vm = f32x4.splat(-Infinity)
  for (let j = 0; j < v4; j += 4) vm = f32x4.pmax(vm, v128.load(s + (<usize>j << 2)))
  // laneMax: compare-selects become branches in V8, which random scores mispredict
  const bm = laneMax(vm)
  const m = load<f32>(mp)
  const mNew = m > bm ? m : bm
  const corr: f32 = m == mNew ? 1 : exp1(m - mNew)
  const vNew = f32x4.splat(mNew)
  let vs = f32x4.splat(0)
  for (let j = 0; j < v4; j += 4) {
    const at = s + (<usize>j << 2)
    const p = expv(f32x4.sub(v128.load(at), vNew))
    v128.store(at, p)
    vs = f32x4.add(vs, p)
  }
  store<f32>(mp, mNew)
  store<f32>(lp, load<f32>(lp) * corr + hsum(vs))
  return corr
}

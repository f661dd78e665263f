/**
 * Composite fixed-point operators written once against FxEngine, so they run on secret shares (Party)
 * and on cleartext (PlainFixedPoint) alike. Shapes are row-major; `rows x n` means rows of length n.
 */
import { fixedConst, FixedPointError, type FxEngine } from './engine.js'
import { concatWords, type Words } from './ring.js'

/** where c (0/1 integers) is 1: a, else b.  b + c (a - b): one ring product. */
export async function select(e: FxEngine, c: Words, a: Words, b: Words): Promise<Words> {
  return e.add(b, await e.mulRing(c, e.sub(a, b)))
}

function take(x: Words, rows: number, n: number, cols: (r: number) => number[]): Words {
  const out: bigint[] = []
  for (let r = 0; r < rows; r++) for (const c of cols(r)) out.push(x[r * n + c])
  return BigInt64Array.from(out)
}

/**
 * Row maxima by a log-depth tournament: each level compares the row's elements in pairs, all rows and
 * pairs in one batch (ceil(log2 n) levels, each one ltz and one ring product).
 */
export function maxRows(e: FxEngine, x: Words, rows: number, n: number): Promise<Words> {
  return e.scope('max', async () => {
    if (x.length !== rows * n || n < 1) throw new FixedPointError(`maxRows: expected ${rows} x ${n} elements, got ${x.length}`)
    let cur = x
    let len = n
    while (len > 1) {
      const half = len >> 1
      const a = take(cur, rows, len, () => Array.from({ length: half }, (_, i) => 2 * i))
      const b = take(cur, rows, len, () => Array.from({ length: half }, (_, i) => 2 * i + 1))
      const aLessB = await e.ltz(e.sub(a, b))
      const m = await select(e, aLessB, b, a)
      const nextLen = half + (len & 1)
      const next = new BigInt64Array(rows * nextLen)
      for (let r = 0; r < rows; r++) {
        next.set(m.subarray(r * half, (r + 1) * half), r * nextLen)
        if (len & 1) next[r * nextLen + half] = cur[r * len + len - 1]
      }
      cur = next
      len = nextLen
    }
    return cur
  })
}

/** x - m[row] for every element of each row */
function subRowScalar(e: FxEngine, x: Words, m: Words, rows: number, n: number): Words {
  return e.sub(x, broadcastRows(m, rows, n))
}
function broadcastRows(m: Words, rows: number, n: number): Words {
  const out = new BigInt64Array(rows * n)
  for (let r = 0; r < rows; r++) out.fill(m[r], r * n, (r + 1) * n)
  return out
}
function rowSums(e: FxEngine, x: Words, rows: number, n: number): Words {
  const out = new BigInt64Array(rows)
  for (let r = 0; r < rows; r++) {
    let s = 0n
    for (let i = 0; i < n; i++) s += x[r * n + i]
    out[r] = BigInt.asIntN(64, s)
  }
  void e
  return out
}

export interface ExpOptions {
  /** n in exp(x) = exp(x / 2^n)^(2^n) (default 8: inputs above -2^n = -256) */
  iterations?: number
}

/**
 * exp(x) by the limit approximation (CrypTen's, 8 iterations), with a second-order start:
 * exp(t) ~ 1 + t + t^2/2 for t = x / 2^n, then n squarings. t and the squarings are kept at f + n
 * fractional bits (t needs no truncation: it is x's integer read at a finer scale), so the n squarings
 * do not magnify the error of dropping x's low bits. Valid for -2^n < x <= ~4 (the squares must stay
 * below 2^62); PUMA-style clipping (softmax) removes inputs below a threshold.
 */
export function exp(e: FxEngine, x: Words, options: ExpOptions = {}): Promise<Words> {
  return e.scope('exp', async () => {
    const n = options.iterations ?? 8
    if (!Number.isInteger(n) || n < 1 || n > 12) throw new FixedPointError(`exp: iterations must be an integer in 1..12, got ${n}`)
    const scale = e.fracBits + n
    const one = 1n << BigInt(scale)
    // y = 1 + t + t^2 / 2 at scale f + n, with t's integer equal to x's
    const t2half = await e.trunc(await e.squareRing(x), scale + 1)
    let y = e.addConst(e.add(x, t2half), one)
    for (let i = 0; i < n; i++) y = await e.trunc(await e.squareRing(y), scale)
    return e.trunc(y, n)
  })
}

export type ReciprocalMethod = 'newton' | 'goldschmidt'

export interface ReciprocalOptions {
  method?: ReciprocalMethod
  /** iterations (default 10 Newton, as CrypTen; 10 Goldschmidt) */
  iterations?: number
}

/**
 * 1/x for x in [1, ~600] (softmax denominators). Start y0 = 3 exp(0.5 - x) + 0.003 (CrypTen's
 * initial guess), then
 * - Newton-Raphson: y <- y (2 - x y), two dependent products per iteration;
 * - Goldschmidt: eps = 1 - x y0; y <- y (1 + eps), eps <- eps^2, the two products of an iteration in
 *   one round. Not self-correcting: the truncation error of the first eps stays (about 1e-3 relative
 *   at 18 fractional bits, where Newton ends within a few LSB).
 */
export function reciprocal(e: FxEngine, x: Words, options: ReciprocalOptions = {}): Promise<Words> {
  return e.scope('reciprocal', async () => {
    const method = options.method ?? 'newton'
    const iters = options.iterations ?? 10
    if (method !== 'newton' && method !== 'goldschmidt') throw new FixedPointError(`reciprocal: method must be 'newton' or 'goldschmidt', got ${JSON.stringify(method)}`)
    if (!Number.isInteger(iters) || iters < 1) throw new FixedPointError(`reciprocal: iterations must be a positive integer, got ${iters}`)
    const f = e.fracBits
    const c = (v: number): bigint => fixedConst(v, f)
    const ex = await exp(e, e.addConst(e.sub(e.constant(0n, x.length), x), c(0.5)))
    let y = e.addConst(e.mulConst(ex, 3n), c(0.003))
    if (method === 'newton') {
      for (let i = 0; i < iters; i++) {
        const xy = await e.mul(x, y)
        y = await e.mul(y, e.addConst(e.sub(e.constant(0n, x.length), xy), c(2)))
      }
      return y
    }
    let eps = e.addConst(e.sub(e.constant(0n, x.length), await e.mul(x, y)), c(1))
    const n = x.length
    for (let i = 0; i < iters; i++) {
      // [y (1 + eps), eps^2] in one batch
      const both = await e.mul(concatWords(y, eps), concatWords(e.addConst(eps, c(1)), eps))
      y = both.slice(0, n)
      eps = both.slice(n)
    }
    return y
  })
}


export type SoftmaxVariant = 'exact' | 'clip' | '2quad'

export interface SoftmaxOptions {
  variant?: SoftmaxVariant
  /** 'clip': inputs more than this below the row max give 0 (PUMA uses 14) */
  clip?: number
  /** '2quad': the shift c in (x + c)^2 (MPCFormer uses 5) */
  quadShift?: number
  exp?: ExpOptions
  reciprocal?: ReciprocalOptions
}

/**
 * Row softmax over rows x n fixed-point logits.
 * - 'exact': max-subtracted, exp(x - max) / sum (the sum is in [1, n]).
 * - 'clip' (PUMA, Dong et al. 2023): as exact, but exp is 0 where x - max < -clip.
 * - '2quad' (MPCFormer, Li et al. ICLR 2023): (x + c)^2 / sum (x + c)^2; no max, no exp. A different
 *   function from softmax, for models distilled to it.
 */
export function softmax(e: FxEngine, x: Words, rows: number, n: number, options: SoftmaxOptions = {}): Promise<Words> {
  return e.scope('softmax', async () => {
    const variant = options.variant ?? 'exact'
    if (x.length !== rows * n) throw new FixedPointError(`softmax: expected ${rows} x ${n} elements, got ${x.length}`)
    const f = e.fracBits
    let num: Words
    if (variant === '2quad') {
      num = await e.mul(...dup(e.addConst(x, fixedConst(options.quadShift ?? 5, f))))
    } else if (variant === 'exact' || variant === 'clip') {
      const m = await maxRows(e, x, rows, n)
      const z = subRowScalar(e, x, m, rows, n)
      num = await exp(e, z, options.exp)
      if (variant === 'clip') {
        const below = await e.ltz(e.addConst(z, fixedConst(options.clip ?? 14, f)))
        num = e.sub(num, await e.mulRing(below, num))
      }
    } else {
      throw new FixedPointError(`softmax: variant must be 'exact', 'clip' or '2quad', got ${JSON.stringify(variant)}`)
    }
    const inv = await reciprocal(e, rowSums(e, num, rows, n), options.reciprocal)
    return e.mul(num, broadcastRows(inv, rows, n))
  })
}

function dup(a: Words): [Words, Words] {
  return [a, a]
}

/** The largest value standing in for padding in sorting networks: below any real input. */
const PAD = -(1n << 61n)

/**
 * Top-k of each row by a bitonic sorting network (Batcher, 1968) over (value, index) pairs, sorted
 * descending; the row is padded to a power of two with a value below any input. Each of the
 * log2(N)(log2(N)+1)/2 layers is one batched ltz and one batched ring product (value and index
 * swaps together). Ties keep the network's order, identically on both engines.
 * Returns values (rows x k, fixed point) and indices (rows x k, integers), both still secret.
 */
export function topK(e: FxEngine, x: Words, rows: number, n: number, k: number): Promise<{ values: Words; indices: Words }> {
  return e.scope('topk', async () => {
    if (x.length !== rows * n) throw new FixedPointError(`topK: expected ${rows} x ${n} elements, got ${x.length}`)
    if (!Number.isInteger(k) || k < 1 || k > n) throw new FixedPointError(`topK: k must be an integer in 1..${n}, got ${k}`)
    let N = 1
    while (N < n) N <<= 1
    let v = new BigInt64Array(rows * N)
    let idx = new BigInt64Array(rows * N)
    const padValue = e.constant(PAD, 1)[0]
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < N; i++) {
        v[r * N + i] = i < n ? x[r * n + i] : padValue
        idx[r * N + i] = e.constant(BigInt(i), 1)[0]
      }
    }
    for (let size = 2; size <= N; size <<= 1) {
      for (let stride = size >> 1; stride > 0; stride >>= 1) {
        // comparators of this layer: (i, j = i + stride), larger first where the block runs descending
        const lo: number[] = []
        const hi: number[] = []
        const desc: boolean[] = []
        for (let i = 0; i < N; i++) {
          if ((i & stride) !== 0) continue
          lo.push(i)
          hi.push(i + stride)
          desc.push((i & size) === 0)
        }
        const pick = (w: Words, at: number[]): Words => take(w, rows, N, () => at)
        const a = pick(v, lo)
        const b = pick(v, hi)
        const aLess = await e.ltz(e.sub(a, b))
        // swap when a descending pair has a < b, or an ascending pair has a >= b
        const swap = new BigInt64Array(aLess.length)
        const one = e.constant(1n, 1)[0]
        for (let r = 0; r < rows; r++) for (let c = 0; c < lo.length; c++) {
          const q = r * lo.length + c
          swap[q] = desc[c] ? aLess[q] : one - aLess[q]
        }
        const ia = pick(idx, lo)
        const ib = pick(idx, hi)
        const delta = await e.mulRing(concatWords(swap, swap), concatWords(e.sub(b, a), e.sub(ib, ia)))
        const m = lo.length * rows
        const dv = delta.subarray(0, m)
        const di = delta.subarray(m)
        v = v.slice()
        idx = idx.slice()
        for (let r = 0; r < rows; r++) for (let c = 0; c < lo.length; c++) {
          const q = r * lo.length + c
          v[r * N + lo[c]] = BigInt.asIntN(64, a[q] + dv[q])
          v[r * N + hi[c]] = BigInt.asIntN(64, b[q] - dv[q])
          idx[r * N + lo[c]] = BigInt.asIntN(64, ia[q] + di[q])
          idx[r * N + hi[c]] = BigInt.asIntN(64, ib[q] - di[q])
        }
      }
    }
    const first = (w: Words): Words => take(w, rows, N, () => Array.from({ length: k }, (_, i) => i))
    return { values: first(v), indices: first(idx) }
  })
}

/**
 * Gathers rows of a secret table (n x d) by a secret one-hot matrix (k x n, integer 0/1 entries):
 * one ring matrix product, so neither the indices nor the rows are revealed.
 */
export function gatherOneHot(e: FxEngine, oneHot: Words, table: Words, k: number, n: number, d: number): Promise<Words> {
  return e.scope('gather', () => e.matmulRing(oneHot, table, k, n, d))
}

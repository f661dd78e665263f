import type { PackedKernels } from './backend.js'

/**
 * Kernels of the Llama runtime (linear layers, RMSNorm, RoPE, SwiGLU, chunked causal attention over the
 * paged cache), pointer based like KernelBackend: byte pointers into the arena and element counts. They
 * allocate nothing and check nothing; src/model and src/cache size every buffer before calling in.
 * Each has a plain TypeScript twin (reference/model-kernels.ts) and a wasm SIMD one (assembly/model/).
 */
export interface ModelKernels {
  /** y[t][o] = x[t] . w[o] + bias[o] (bias 0: none); x [T][inDim], w [outDim][inDim], y [T][outDim] */
  matmul(x: number, w: number, bias: number, y: number, T: number, inDim: number, outDim: number): void
  /** out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * g over T rows of dim (out may alias x) */
  rmsnorm(x: number, g: number, out: number, T: number, dim: number, eps: number): void
  /** in-place rotate_half RoPE of x [T][heads][d] with cos, sin [T][d/2] */
  rope(x: number, T: number, heads: number, d: number, cos: number, sin: number): void
  /**
   * rope over rows [first, first + n) of one paged stream of d-float rows (the page table of a cached
   * head), row first + r with cos, sin row r ([n][d/2]): the re-rotation of cached keys.
   */
  ropeRows(table: number, pageTokens: number, first: number, n: number, d: number, cos: number, sin: number): void
  /** out[i] = silu(gate[i]) * up[i] (out may alias gate) */
  swiglu(gate: number, up: number, out: number, n: number): void
  /** y[i] += x[i] */
  addInPlace(y: number, x: number, n: number): void
  /**
   * Causal attention of T tokens x hq query heads over one KV head's n paged rows (online softmax, tiles
   * of 64 keys). Row r = t*hq + h: query at q + (t*qStride + h*kd) floats, sees the first
   * min(n, visible0 + t) keys; output at out + (t*outStride + h*vd); lse[r] when lse != 0.
   * scratch: attendScratchFloats(vd, T * hq) floats.
   */
  attendCausal(
    q: number, qStride: number, hq: number, T: number, kd: number, vd: number,
    kTable: number, vTable: number, pageTokens: number, n: number, visible0: number, scale: number,
    out: number, outStride: number, lse: number, scratch: number,
  ): void
  /**
   * attendCausal for T tokens at scattered positions: token t sees the first ends[t] keys (int32 at
   * `ends`, non-decreasing); each row's output and lse bit for bit an attendCausal call's where it sees
   * as many keys (CacheBlend's recompute: the chosen rows in one call, not one a run of consecutive slots).
   * scratch: attendScratchFloats(vd, T * hq) floats.
   */
  attendCausalRows(
    q: number, qStride: number, hq: number, T: number, kd: number, vd: number,
    kTable: number, vTable: number, pageTokens: number, ends: number, scale: number,
    out: number, outStride: number, lse: number, scratch: number,
  ): void
  /**
   * Decode attention of hq query heads (q [hq][kd], out [hq][vd], lse [hq] when lse != 0) over the nIdx
   * tokens listed at idx (int32), through attendCausal's tiles: listing every token in order is
   * attendCausal with T = 1 bit for bit. scratch: attendScratchFloats(vd, hq) floats.
   */
  attendGathered(
    q: number, hq: number, kd: number, vd: number,
    kTable: number, vTable: number, pageTokens: number, idx: number, nIdx: number, scale: number,
    out: number, lse: number, scratch: number,
  ): void
  /** attendCausal over float16 key and value rows (widened in registers as they are read) */
  attendCausalF16(
    q: number, qStride: number, hq: number, T: number, kd: number, vd: number,
    kTable: number, vTable: number, pageTokens: number, n: number, visible0: number, scale: number,
    out: number, outStride: number, lse: number, scratch: number,
  ): void
  /** attendGathered over float16 key and value rows */
  attendGatheredF16(
    q: number, hq: number, kd: number, vd: number,
    kTable: number, vTable: number, pageTokens: number, idx: number, nIdx: number, scale: number,
    out: number, lse: number, scratch: number,
  ): void
  /** attentionMass over float16 key rows */
  attentionMassF16(
    q: number, qStride: number, hq: number, T: number, kd: number,
    kTable: number, pageTokens: number, n: number, visible0: number, scale: number,
    lse: number, mass: number, scratch: number,
  ): void
  /** mass[j] += sum_r exp(scale q_r . k_j - lse[r]) over the keys row r sees (rows as attendCausal). scratch: 256 floats */
  attentionMass(
    q: number, qStride: number, hq: number, T: number, kd: number,
    kTable: number, pageTokens: number, n: number, visible0: number, scale: number,
    lse: number, mass: number, scratch: number,
  ): void
  /**
   * Several matmuls whose outputs are disjoint and whose inputs none of them writes (a layer's Q, K and
   * V projections; gate and up), as if called in turn: the threaded backend runs them as one parallel
   * region (one fork and join instead of one per call). Absent: call matmul for each.
   */
  matmulBatch?(calls: readonly MatmulCall[]): void
  /**
   * Several independent attendCausal calls (one per KV head of a layer), as if called in turn; each
   * call's scratch as attendCausal's, a `half` call attendCausalF16's. The threaded backend runs them as
   * one region. Absent: call each.
   */
  attendCausalBatch?(calls: readonly AttendCall[]): void
  /** Several independent attendGathered (attendGatheredF16 for a `half` call) calls (one per KV head of a decode step) in one region. Absent: call each. */
  attendGatheredBatch?(calls: readonly GatheredCall[]): void
  /**
   * Several independent attendPacked calls over packed pages (one per KV head of a layer; attendSign
   * for a `sign` call), as if called in turn: the threaded backend runs them as one region, split by
   * rows or by keys as decode attention is (a key split's partial outputs merged after it, within
   * float32 rounding of one call). Absent: call attendPacked for each.
   */
  attendPackedBatch?(calls: readonly PackedAttendCall[]): void
  /** register-only multiply-adds for the benchmarks' peak estimate: 12 chains x 4 lanes x 2 = 96 flops per iteration */
  fmaPeak(iters: number): number
}

/** The arguments of one ModelKernels.matmul call, by name. */
export interface MatmulCall {
  x: number
  w: number
  bias: number
  y: number
  T: number
  inDim: number
  outDim: number
}

/** Where an attention call's keys and values are: page tables of pageTokens rows, kd and vd elements a row. */
export interface PagedKV {
  kd: number
  vd: number
  kTable: number
  vTable: number
  pageTokens: number
}

/** The arguments of one ModelKernels.attendCausal call, by name. */
export interface AttendCall extends PagedKV {
  q: number
  qStride: number
  hq: number
  T: number
  n: number
  visible0: number
  scale: number
  out: number
  outStride: number
  lse: number
  scratch: number
  /** keys and values are float16 rows: the call runs attendCausalF16 */
  half?: boolean
}

/** The arguments of one ModelKernels.attendGathered call, by name. */
export interface GatheredCall extends PagedKV {
  q: number
  hq: number
  idx: number
  nIdx: number
  scale: number
  out: number
  lse: number
  scratch: number
  /** keys and values are float16 rows: the call runs attendGatheredF16 */
  half?: boolean
}

/**
 * The arguments of one attendPacked call (kHi = 0) or, with `sign`, one attendSign call, by name: `rows` query rows [rows][kd] over n packed
 * tokens, all visible; out rows of vd floats, contiguous; lse [rows]; scratch packedAttendScratch(rows, kd, vd, n).
 */
export interface PackedAttendCall extends PagedKV {
  q: number
  rows: number
  n: number
  /** VidKV's int2+sign keys (attendSign): the int2 channels, the token group, the values' channel group; the query already in the keys' basis */
  sign?: { kHi: number; group: number; vGroup: number }
  /** KIVI's keys (not `sign`): tokens per key group, 32 (default), 64 or 128, and the values' channel group (formats.ts valueGroupFor) */
  group?: number
  vGroup?: number
  kBits: number
  vBits: number
  scale: number
  out: number
  lse: number
  scratch: number
}

/** One PackedAttendCall on the calling thread: attendSign for a `sign` call, else attendPacked (kHi 0). */
export function attendPackedCall(k: Pick<PackedKernels, 'attendPacked' | 'attendSign'>, c: PackedAttendCall): void {
  if (c.sign) k.attendSign(c.q, c.rows, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.sign.kHi, c.sign.group, c.vBits, c.sign.vGroup, c.scale, c.out, c.vd, c.lse, c.scratch)
  else k.attendPacked(c.q, c.rows, c.kd, c.vd, c.kTable, c.vTable, c.pageTokens, c.n, c.kBits, 0, c.vBits, c.scale, c.out, c.vd, c.lse, c.scratch, c.group ?? 32, c.vGroup ?? 32)
}

/** Runs a batch of matmuls in one region where the kernels offer it, else one by one (same results). */
export function matmulAll(k: Pick<ModelKernels, 'matmul' | 'matmulBatch'>, calls: readonly MatmulCall[]): void {
  if (k.matmulBatch) return k.matmulBatch(calls)
  for (const c of calls) k.matmul(c.x, c.w, c.bias, c.y, c.T, c.inDim, c.outDim)
}

/** Scratch floats attendCausal needs for `rows` (= T x hq) query rows and value rows of vd floats. */
export function attendScratchFloats(vd: number, rows: number): number {
  const r4 = Math.ceil(rows / 4) * 4
  return 256 + r4 * (vd + 2)
}

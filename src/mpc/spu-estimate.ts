/**
 * Analytic cost of a traced program under SecretFlow SPU's protocols, from SPU's published complexity
 * table (github.com/secretflow/spu, docs/reference/complexity.md; K = ring bits, N = parties; comm in
 * bits per party, latency in rounds):
 *
 *   kernel    semi2k latency     semi2k comm                   aby3 latency   aby3 comm
 *   a2b       (log K + 1) log N  (2 log K + 1) 2K (N-1)(N-1)   log K + 2      K log K + 2K
 *   b2a       1                  K (N-1)                       TODO in SPU    TODO in SPU
 *   a2p       1                  K (N-1)                       1              K
 *   mul_aa    1                  2K (N-1)                      1              K
 *   mmul_aa   1                  2K (N-1) m n                  1              K m n
 *   trunc_a   1                  K (N-1)                       3              4K
 *   and_bb    1                  2K (N-1)                      1              K
 *
 * Substitutions made here, where the table is silent:
 * - mmul_aa's "m n": semi2k opens both operands (Beaver), so m n := (km + mn) / 2 for a k x m by m x n
 *   product (2 m n = both operands' sizes; equal to the table for square operands); ABY3 reshares
 *   the product, so m n := k n (the output's size).
 * - aby3 b2a (TODO in SPU): costed as one round and K bits per element (one resharing), an assumption.
 * - every traced call is one sequential step (the executor runs its kernels one after another); log is
 *   log2, rounded up.
 * The trace is the two-party executor's (CostLog.kernels): the same program, costed for 3 parties.
 */
import { checkNetworkModel, type KernelCall, type NetworkModel, type SpuKernel } from './cost.js'

/** A spuEstimate or spuSeconds argument it cannot cost: the message names the value. */
export class SpuEstimateError extends RangeError {
  override name = 'SpuEstimateError'
}

const shown = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v))

export type SpuProtocol = 'semi2k' | 'aby3'

export interface SpuEstimate {
  protocol: SpuProtocol
  parties: number
  rounds: number
  /** bytes sent per party */
  bytesSent: number
  /** the kernels whose formula is an assumption (see above) */
  assumed: SpuKernel[]
}

const lg = (x: number): number => Math.ceil(Math.log2(x))

interface Formula {
  latency: (K: number, N: number) => number
  /** bits per element */
  comm: (K: number, N: number) => number
}

const SEMI2K: Record<SpuKernel, Formula> = {
  a2b: { latency: (K, N) => (lg(K) + 1) * lg(N), comm: (K, N) => (2 * lg(K) + 1) * 2 * K * (N - 1) * (N - 1) },
  b2a: { latency: () => 1, comm: (K, N) => K * (N - 1) },
  a2p: { latency: () => 1, comm: (K, N) => K * (N - 1) },
  mul_aa: { latency: () => 1, comm: (K, N) => 2 * K * (N - 1) },
  mmul_aa: { latency: () => 1, comm: (K, N) => 2 * K * (N - 1) },
  trunc_a: { latency: () => 1, comm: (K, N) => K * (N - 1) },
  and_bb: { latency: () => 1, comm: (K, N) => 2 * K * (N - 1) },
}

const ABY3: Record<SpuKernel, Formula> = {
  a2b: { latency: (K) => lg(K) + 2, comm: (K) => lg(K) * K + 2 * K },
  b2a: { latency: () => 1, comm: (K) => K },
  a2p: { latency: () => 1, comm: (K) => K },
  mul_aa: { latency: () => 1, comm: (K) => K },
  mmul_aa: { latency: () => 1, comm: (K) => K },
  trunc_a: { latency: () => 3, comm: (K) => 4 * K },
  and_bb: { latency: () => 1, comm: (K) => K },
}

/** elements a call is charged for: the table's per-element count, with mmul_aa's m n substituted */
function elementsOf(call: KernelCall, protocol: SpuProtocol): number {
  if (call.kernel !== 'mmul_aa' || !call.shape) return call.elements
  const [k, m, n] = call.shape
  return protocol === 'semi2k' ? (k * m + m * n) / 2 : k * n
}

/**
 * The rounds and bytes per party of `trace` (CostLog.kernels) under `protocol` with `parties` parties on
 * a ring of `ringBits` bits. Throws SpuEstimateError naming the value, before any costing: an unknown
 * protocol, a party count the protocol does not run (ABY3: 3), a ring that is no integer of at least 2
 * bits, a trace that is not a list of calls of SPU's kernels with non-negative element counts.
 */
export function spuEstimate(trace: readonly KernelCall[], protocol: SpuProtocol, parties = 3, ringBits = 64): SpuEstimate {
  const fail = (m: string): never => { throw new SpuEstimateError(`spuEstimate: ${m}`) }
  if (protocol !== 'semi2k' && protocol !== 'aby3') fail(`protocol must be 'semi2k' or 'aby3', got ${shown(protocol)}`)
  if (!Number.isInteger(parties) || parties < 2) fail(`parties must be an integer >= 2, got ${shown(parties)}`)
  if (protocol === 'aby3' && parties !== 3) fail(`ABY3 is a 3-party protocol, got ${parties} parties`)
  if (!Number.isInteger(ringBits) || ringBits < 2) fail(`ringBits must be an integer >= 2, got ${shown(ringBits)}`)
  const table = protocol === 'semi2k' ? SEMI2K : ABY3
  // an unknown kernel was "f.latency is not a function"; a bad count made the estimate NaN
  if (!Array.isArray(trace)) fail(`trace must be a list of kernel calls (CostLog.kernels), got ${shown(trace)}`)
  trace.forEach((call, i) => {
    if (typeof call !== 'object' || call === null || !Object.prototype.hasOwnProperty.call(table, call.kernel)) fail(`trace[${i}] is not a call of one of SPU's kernels (${Object.keys(table).join(', ')}), got ${shown(call)}`)
    if (!(Number.isFinite(call.elements) && call.elements >= 0)) fail(`trace[${i}].elements must be a non-negative count, got ${shown(call.elements)}`)
    if (call.shape !== undefined && !(Array.isArray(call.shape) && call.shape.length === 3 && call.shape.every((x) => Number.isInteger(x) && x >= 0))) fail(`trace[${i}].shape must be [k, m, n] of non-negative integers, got ${shown(call.shape)}`)
  })
  let rounds = 0
  let bits = 0
  for (const call of trace) {
    const f = table[call.kernel]
    rounds += f.latency(ringBits, parties)
    bits += f.comm(ringBits, parties) * elementsOf(call, protocol)
  }
  const assumed: SpuKernel[] = protocol === 'aby3' && trace.some((c) => c.kernel === 'b2a') ? ['b2a'] : []
  return { protocol, parties, rounds, bytesSent: bits / 8, assumed }
}

/** Modelled seconds of an estimate on a network (rounds x RTT/2 + bytes / bandwidth, as cost.ts); NetworkModelError for a bad `net`, SpuEstimateError for an estimate without finite counts. */
export function spuSeconds(e: SpuEstimate, net: NetworkModel): number {
  if (typeof e !== 'object' || e === null || !(Number.isFinite(e.rounds) && e.rounds >= 0 && Number.isFinite(e.bytesSent) && e.bytesSent >= 0))
    throw new SpuEstimateError(`spuSeconds: the estimate must be spuEstimate's { rounds, bytesSent }, got ${shown(e)}`)
  checkNetworkModel(net, 'spuSeconds')
  return e.rounds * (net.rttSeconds / 2) + (e.bytesSent * 8) / net.bandwidthBitsPerSecond
}

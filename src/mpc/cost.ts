/**
 * Exact cost accounting for one party: every communication round, every byte this party sends, and
 * every byte the dealer sends it (offline), attributed to the operators running at the time. Operators
 * nest (softmax runs max, exp, reciprocal...), so each label's figures are inclusive, like a profiler's
 * inclusive time; `total` counts each round and byte once.
 */

export interface Cost {
  /** communication rounds (one simultaneous exchange between the two parties each) */
  rounds: number
  /** bytes this party sent online */
  bytesSent: number
  /** bytes of correlated randomness the dealer sent this party (offline phase) */
  offlineBytes: number
}

export const zeroCost = (): Cost => ({ rounds: 0, bytesSent: 0, offlineBytes: 0 })

export function addCost(a: Cost, b: Cost): Cost {
  return { rounds: a.rounds + b.rounds, bytesSent: a.bytesSent + b.bytesSent, offlineBytes: a.offlineBytes + b.offlineBytes }
}
export function subCost(a: Cost, b: Cost): Cost {
  return { rounds: a.rounds - b.rounds, bytesSent: a.bytesSent - b.bytesSent, offlineBytes: a.offlineBytes - b.offlineBytes }
}

/**
 * The protocol-level kernels of SecretFlow SPU's complexity table (docs/reference/complexity.md):
 * multiplication of shares, matrix product, opening (a2p), truncation, share conversion (a2b, b2a),
 * AND of boolean shares. Each call is logged with its size so the same program can be costed for
 * other protocols (spu-estimate.ts).
 */
export type SpuKernel = 'mul_aa' | 'mmul_aa' | 'a2p' | 'trunc_a' | 'a2b' | 'b2a' | 'and_bb'

export interface KernelCall {
  kernel: SpuKernel
  /** elements (for mmul_aa: the product's k, m, n in `shape`) */
  elements: number
  shape?: [number, number, number]
}

export class CostLog {
  readonly total: Cost = zeroCost()
  /** the outermost protocol kernels run, in order (a comparison's inner ANDs are part of its a2b) */
  readonly kernels: KernelCall[] = []
  private kernelDepth = 0
  /** inclusive cost per operator label, in first-seen order */
  readonly byOp = new Map<string, Cost & { calls: number }>()
  private readonly stack: string[] = []

  round(bytesSent: number): void {
    this.bump({ rounds: 1, bytesSent, offlineBytes: 0 })
  }
  offline(bytes: number): void {
    this.bump({ rounds: 0, bytesSent: 0, offlineBytes: bytes })
  }

  private bump(c: Cost): void {
    const t = this.total
    t.rounds += c.rounds
    t.bytesSent += c.bytesSent
    t.offlineBytes += c.offlineBytes
    // a label repeated on the stack (max inside max) is counted once
    for (const name of new Set(this.stack)) {
      const e = this.byOp.get(name)!
      e.rounds += c.rounds
      e.bytesSent += c.bytesSent
      e.offlineBytes += c.offlineBytes
    }
  }

  /** Runs f with its communication attributed to `name` (and to every enclosing operator). */
  async scope<T>(name: string, f: () => Promise<T>): Promise<T> {
    let e = this.byOp.get(name)
    if (!e) this.byOp.set(name, (e = { ...zeroCost(), calls: 0 }))
    if (!this.stack.includes(name)) e.calls++
    this.stack.push(name)
    try {
      return await f()
    } finally {
      this.stack.pop()
    }
  }

  /** Runs f as protocol kernel `call`; kernels run inside it are not logged again. */
  async kernel<T>(call: KernelCall | KernelCall[], f: () => Promise<T>): Promise<T> {
    if (this.kernelDepth === 0) this.kernels.push(...(Array.isArray(call) ? call : [call]))
    this.kernelDepth++
    try {
      return await f()
    } finally {
      this.kernelDepth--
    }
  }

  snapshot(): Cost {
    return { ...this.total }
  }
}

/** A network between the two parties. */
export interface NetworkModel {
  name: string
  /** bits per second, each direction (full duplex) */
  bandwidthBitsPerSecond: number
  /** round-trip time in seconds */
  rttSeconds: number
}

/** 10 Gbit/s with 0.1 ms round trip (a LAN, as in MPCache's and PUMA's LAN setting) */
export const LAN: NetworkModel = { name: 'LAN 10Gbit/s 0.1ms', bandwidthBitsPerSecond: 10e9, rttSeconds: 0.1e-3 }
/** 1 Gbit/s with 10 ms round trip */
export const WAN: NetworkModel = { name: 'WAN 1Gbit/s 10ms', bandwidthBitsPerSecond: 1e9, rttSeconds: 10e-3 }

export class NetworkModelError extends RangeError {
  override name = 'NetworkModelError'
}

/** A Cost that is not one: not an object, or a field that is not a non-negative finite number (rounds: an integer). */
export class CostError extends RangeError {
  override name = 'CostError'
}

const shown = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v) ?? String(v))

function checkNetworkFigures(bandwidthBitsPerSecond: unknown, rttSeconds: unknown): void {
  if (typeof bandwidthBitsPerSecond !== 'number' || !(bandwidthBitsPerSecond > 0) || !Number.isFinite(bandwidthBitsPerSecond)) throw new NetworkModelError(`network: bandwidth must be a positive finite number of bits per second, got ${shown(bandwidthBitsPerSecond)}`)
  if (typeof rttSeconds !== 'number' || !(rttSeconds >= 0) || !Number.isFinite(rttSeconds)) throw new NetworkModelError(`network: round-trip time must be a non-negative number of seconds, got ${shown(rttSeconds)}`)
}

export function customNetwork(bandwidthBitsPerSecond: number, rttSeconds: number, name = 'custom'): NetworkModel {
  checkNetworkFigures(bandwidthBitsPerSecond, rttSeconds)
  return { name, bandwidthBitsPerSecond, rttSeconds }
}

/** Throws NetworkModelError where `net` is not a NetworkModel or a figure of it is not one (`where` names the caller). */
export function checkNetworkModel(net: unknown, where: string): asserts net is NetworkModel {
  if (typeof net !== 'object' || net === null) throw new NetworkModelError(`${where}: net must be a NetworkModel { bandwidthBitsPerSecond, rttSeconds } (LAN, WAN, customNetwork(...)), got ${net === null ? 'null' : typeof net}`)
  const n = net as Partial<NetworkModel>
  checkNetworkFigures(n.bandwidthBitsPerSecond, n.rttSeconds)
}

/** Throws CostError naming the first field of `cost` that is missing or not a count (rounds, bytesSent, offlineBytes). */
export function checkCost(cost: unknown, where: string): asserts cost is Cost {
  if (typeof cost !== 'object' || cost === null) throw new CostError(`${where}: cost must be an object { rounds, bytesSent, offlineBytes }, got ${cost === null ? 'null' : typeof cost}`)
  for (const field of ['rounds', 'bytesSent', 'offlineBytes'] as const) {
    const v = (cost as Record<string, unknown>)[field]
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (field === 'rounds' && !Number.isInteger(v))) {
      throw new CostError(`${where}: cost.${field} must be a non-negative ${field === 'rounds' ? 'integer' : 'finite number'}, got ${v === undefined ? 'undefined' : shown(v)}`)
    }
  }
}

/**
 * Modelled online communication time in seconds. Each round is one simultaneous exchange: both parties
 * send, then wait for the other's message, so a round costs one one-way latency (RTT / 2) plus the
 * time to push this party's bytes through the link (the two directions run in parallel). Local compute
 * is not included: add the measured compute time for a wall-clock prediction. Throws CostError naming
 * a field of `cost` that is not a non-negative count, NetworkModelError for a bad `net`.
 */
export function modelledSeconds(cost: Cost, net: NetworkModel): number {
  // a missing or misspelt field read as undefined and the time as NaN, shown as "NaN ms" in the tables
  checkCost(cost, 'modelledSeconds')
  checkNetworkModel(net, 'modelledSeconds')
  return cost.rounds * (net.rttSeconds / 2) + (cost.bytesSent * 8) / net.bandwidthBitsPerSecond
}

/**
 * Wiring two parties together in one process (the simulation used by tests, benches and the example),
 * and splitting a cleartext input into shares.
 */
import { CostLog } from './cost.js'
import { DealerStream, type DealerSeeds } from './dealer.js'
import { optionNamesProblem } from '../model/errors.js'
import { checkPartyOptions, Party, ProtocolError, type PartyOptions } from './party.js'
import { ChaCha20Prg } from './prg.js'
import type { Ring, Words } from './ring.js'
import { inProcessPair, type Transport } from './transport.js'

export interface PartySetup extends PartyOptions {
  seeds?: DealerSeeds
}

export const DEFAULT_SEEDS: DealerSeeds = { seed0: 'kvkit-mpc-dealer-seed-0', seed1: 'kvkit-mpc-dealer-seed-1' }

const SETUP_OPTIONS: Record<keyof PartySetup, true> = { fracBits: true, trunc: true, seeds: true }
const RING_OPS = ['add', 'sub', 'mul', 'xor', 'and', 'shl', 'shr', 'matmul', 'beaverMul', 'beaverAnd'] as const

/**
 * Refuses (ProtocolError, naming it) a ring that is not one (createParty(0, t, { fracBits: 16 }) took the
 * options for the ring and failed at the first operation with a TypeError) and a setup option it does not
 * know (`fracbits: 16` was ignored: the parties ran at the default 18 bits).
 */
function checkSetup(ring: Ring, setup: PartySetup): void {
  const r = ring as unknown as Record<string, unknown> | null
  const missing = typeof r === 'object' && r !== null ? RING_OPS.filter((op) => typeof r[op] !== 'function') : RING_OPS
  if (missing.length) throw new ProtocolError(`createParty: ring must be a Ring (createWasmRing() or referenceRing), got ${r === null ? 'null' : typeof r}${typeof r === 'object' && r !== null ? ` without ${missing.join(', ')}` : ''}`)
  const problem = optionNamesProblem(setup, SETUP_OPTIONS)
  if (problem !== undefined) throw new ProtocolError(`createParty: ${problem}`)
  checkPartyOptions(setup)
  if (setup.seeds !== undefined) checkSeeds(setup.seeds)
}

/** the dealer's seeds as ChaCha20Prg takes them (a string, hashed, or 32 bytes): a number failed inside the dealer with a TypeError */
function checkSeeds(seeds: DealerSeeds): void {
  if (typeof seeds !== 'object' || seeds === null) throw new ProtocolError(`createParty: seeds must be an object with seed0 and seed1, got ${seeds === null ? 'null' : typeof seeds}`)
  for (const key of ['seed0', 'seed1', 'dealer'] as const) {
    const s: unknown = seeds[key]
    if (key === 'dealer' && s === undefined) continue
    if (typeof s === 'string' || (s instanceof Uint8Array && s.length === 32)) continue
    throw new ProtocolError(`createParty: seeds.${key} must be a string or 32 bytes (Uint8Array), got ${s instanceof Uint8Array ? `${s.length} bytes` : s === null ? 'null' : typeof s}`)
  }
}

/** One party over a given transport (for the socket transport, each process makes its own). */
export function createParty(id: 0 | 1, transport: Transport, ring: Ring, setup: PartySetup = {}): Party {
  checkSetup(ring, setup)
  const cost = new CostLog()
  const dealer = new DealerStream(id, setup.seeds ?? DEFAULT_SEEDS, ring, cost)
  return new Party(id, transport, dealer, ring, cost, setup)
}

/** Both parties in this process, connected by a MessageChannel (a simulation: see transport.ts). */
export function createInProcessParties(ring: Ring, setup: PartySetup = {}, wrap?: (t: Transport) => Transport): [Party, Party] {
  // before the channel exists: a refused setup leaves no port open to hold the process
  checkSetup(ring, setup)
  const [t0, t1] = inProcessPair()
  try {
    return [createParty(0, wrap ? wrap(t0) : t0, ring, setup), createParty(1, wrap ? wrap(t1) : t1, ring, setup)]
  } catch (e) {
    // the caller gets no party to close: an open port would keep the process alive
    t0.close()
    t1.close()
    throw e
  }
}

/** Runs the same program on both parties concurrently; resolves with both results. */
export function runBoth<T>(parties: [Party, Party], program: (p: Party) => Promise<T>): Promise<[T, T]> {
  return Promise.all([program(parties[0]), program(parties[1])])
}

/**
 * Additive shares of a cleartext input: x0 uniform from `prg`, x1 = x - x0. Whoever calls this holds
 * the secret; in a deployment the input owner does it and sends x1 to party 1 (8 bytes per element).
 */
export function splitSecret(x: Words, prg: ChaCha20Prg, ring: Ring): [Words, Words] {
  const x0 = prg.words(x.length)
  return [x0, ring.sub(x, x0)]
}

/**
 * Wiring two parties together in one process (the simulation used by tests, benches and the example),
 * and splitting a cleartext input into shares.
 */
import { CostLog } from './cost.js'
import { DealerStream, type DealerSeeds } from './dealer.js'
import { Party, type PartyOptions } from './party.js'
import { ChaCha20Prg } from './prg.js'
import type { Ring, Words } from './ring.js'
import { inProcessPair, type Transport } from './transport.js'

export interface PartySetup extends PartyOptions {
  seeds?: DealerSeeds
}

export const DEFAULT_SEEDS: DealerSeeds = { seed0: 'kvkit-mpc-dealer-seed-0', seed1: 'kvkit-mpc-dealer-seed-1' }

/** One party over a given transport (for the socket transport, each process makes its own). */
export function createParty(id: 0 | 1, transport: Transport, ring: Ring, setup: PartySetup = {}): Party {
  const cost = new CostLog()
  const dealer = new DealerStream(id, setup.seeds ?? DEFAULT_SEEDS, ring, cost)
  return new Party(id, transport, dealer, ring, cost, setup)
}

/** Both parties in this process, connected by a MessageChannel (a simulation: see transport.ts). */
export function createInProcessParties(ring: Ring, setup: PartySetup = {}, wrap?: (t: Transport) => Transport): [Party, Party] {
  const [t0, t1] = inProcessPair()
  return [createParty(0, wrap ? wrap(t0) : t0, ring, setup), createParty(1, wrap ? wrap(t1) : t1, ring, setup)]
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

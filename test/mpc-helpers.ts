import { CostLog } from '../src/mpc/cost.js'
import { PlainFixedPoint, type TruncMode } from '../src/mpc/engine.js'
import type { Party } from '../src/mpc/party.js'
import { ChaCha20Prg } from '../src/mpc/prg.js'
import { createWasmRing, type Ring } from '../src/mpc/ring.js'
import { createInProcessParties, runBoth, splitSecret } from '../src/mpc/session.js'
import type { FxEngine } from '../src/mpc/engine.js'
import type { Words } from '../src/mpc/ring.js'

export { CostLog }

let ringP: Promise<Ring> | undefined
export const wasmRing = (): Promise<Ring> => (ringP ??= createWasmRing())

/**
 * Runs `program` on cleartext inputs three ways: as two parties over shares (in-process), reconstructing
 * the result, and on the cleartext engine. Returns both results and each party's cost log.
 */
export async function mpcVsPlain(
  inputs: Words[],
  program: (e: FxEngine, xs: Words[]) => Promise<Words>,
  opts: { trunc?: TruncMode; fracBits?: number; seed?: string } = {},
): Promise<{ mpc: Words; plain: Words; costs: [CostLog, CostLog] }> {
  const ring = await wasmRing()
  const parties = createInProcessParties(ring, { trunc: opts.trunc ?? 'exact', fracBits: opts.fracBits ?? 18, seeds: { seed0: `${opts.seed ?? 's'}0`, seed1: `${opts.seed ?? 's'}1` } })
  const prg = new ChaCha20Prg(`inputs-${opts.seed ?? 's'}`)
  const shares = inputs.map((x) => splitSecret(x, prg, ring))
  const [r0, r1] = await runBoth(parties, (p: Party) => program(p, shares.map((s) => s[p.id])))
  const mpc = ring.add(r0, r1)
  const plain = await program(new PlainFixedPoint(ring, opts.fracBits ?? 18), inputs)
  return { mpc, plain, costs: [parties[0].cost, parties[1].cost] }
}

/** seeded uniform reals in [lo, hi) */
export function uniforms(seed: number, n: number, lo: number, hi: number): number[] {
  let s = seed >>> 0
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out.push(lo + (((t ^ (t >>> 14)) >>> 0) / 2 ** 32) * (hi - lo))
  }
  return out
}

/** max |a - b| over elements, as integers */
export function maxDiff(a: Words, b: Words): bigint {
  let m = 0n
  for (let i = 0; i < a.length; i++) {
    const d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i]
    if (d > m) m = d
  }
  return m
}

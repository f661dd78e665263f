/**
 * createInProcessParties checks every setup value before its MessageChannel exists: a fracBits, trunc
 * or seeds the parties refuse (FixedPointError, PrgSeedError, or a TypeError inside the dealer for
 * seeds that are not seeds) was found only when the first Party was built, after the channel was open,
 * and the caller, given no party to close, was left with a process that never exited. Run in a child
 * process (the built module): it must print the refusal and exit by itself.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { createInProcessParties } from '../src/mpc/session.js'
import { referenceRing } from '../src/mpc/ring.js'

const built = new URL('../dist/src/mpc/index.js', import.meta.url)

const cases: [string, string][] = [
  ['{ fracBits: 100 }', 'fracBits must be an integer in 1..30, got 100'],
  ['{ trunc: "nope" }', `trunc must be one of 'exact', 'exact-one-round', 'one-round', 'local', got "nope"`],
  ['{ seeds: 5 }', 'createParty: seeds must be an object with seed0 and seed1, got number'],
  ['{ seeds: { seed0: "a" } }', 'createParty: seeds.seed1 must be a string or 32 bytes (Uint8Array), got undefined'],
  ['{ seeds: { seed0: "a", seed1: new Uint8Array(31) } }', 'createParty: seeds.seed1 must be a string or 32 bytes (Uint8Array), got 31 bytes'],
  ['{ seeds: { seed0: "a", seed1: "b", dealer: 7 } }', 'createParty: seeds.dealer must be a string or 32 bytes (Uint8Array), got number'],
]

describe('createInProcessParties with a refused setup value', () => {
  it.each(cases)('%s: refused naming it, and the process exits', (setup, message) => {
    const script = `import { createInProcessParties, referenceRing } from ${JSON.stringify(built.href)}
try { createInProcessParties(referenceRing, ${setup}) } catch (e) { console.log(e.message) }`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000, cwd: fileURLToPath(new URL('..', import.meta.url)) })
    expect(r.stdout.trim()).toBe(message)
    // a port left open keeps the child alive until the timeout kills it (status null)
    expect(r.status).toBe(0)
  })

  it('a transport wrapper that throws: both ends are closed before the error reaches the caller', async () => {
    const seen: { recv(): Promise<BigInt64Array> }[] = []
    let calls = 0
    expect(() =>
      createInProcessParties(referenceRing, {}, (t) => {
        seen.push(t)
        if (++calls === 2) throw new Error('wrapper failed')
        return t
      }),
    ).toThrow('wrapper failed')
    expect(seen).toHaveLength(2)
    for (const t of seen) await expect(t.recv()).rejects.toThrow('transport closed')
  })
})

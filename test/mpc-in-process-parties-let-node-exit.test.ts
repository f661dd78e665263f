/**
 * In-process MPC parties let Node exit once their computation is done, closed or not: each party's
 * MessagePort, given its message handler, held the process alive until closed, so a script that ran a
 * computation and printed its result never exited. The port now holds the process only while a receive
 * waits. Run in a child process (the built module): it must print the product and exit by itself.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const built = new URL('../dist/src/mpc/index.js', import.meta.url)

describe('in-process MPC parties and the process', () => {
  it('a script running a small two-party product exits on its own, with the right result', () => {
    const script = `import { ChaCha20Prg, createInProcessParties, decodeFixed, encodeFixed, referenceRing, runBoth, splitSecret } from ${JSON.stringify(built.href)}
const parties = createInProcessParties(referenceRing)
const prg = new ChaCha20Prg('exit-test')
const a = splitSecret(encodeFixed([3, 5], 18), prg, referenceRing)
const b = splitSecret(encodeFixed([7, 11], 18), prg, referenceRing)
const [r0, r1] = await runBoth(parties, (p) => p.mul(a[p.id], b[p.id]))
console.log([...decodeFixed(referenceRing.add(r0, r1), 18)].map((x) => x.toFixed(3)).join(','))`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000, cwd: fileURLToPath(new URL('..', import.meta.url)) })
    expect(r.stderr).toBe('')
    expect(r.stdout.trim()).toBe('21.000,55.000')
    // the ports left open kept the child alive until the timeout killed it (status null)
    expect(r.status).toBe(0)
  }, 30_000)
})

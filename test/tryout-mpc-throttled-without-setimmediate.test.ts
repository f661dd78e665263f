/**
 * kvkit/mpc's `throttled` link delivers in a runtime without setImmediate (browsers and workers, where the
 * entry claims to run): its last sub-2 ms wait called setImmediate, which threw inside the timer there,
 * so the message never left and the receiver waited for ever. The global is removed before the module
 * loads, as a browser would have it.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'

afterEach(() => {
  vi.unstubAllGlobals()
  vi.resetModules()
})

describe('throttled transport without setImmediate', () => {
  it('a message with a 1 ms delay arrives, in order, after its delay', async () => {
    vi.stubGlobal('setImmediate', undefined)
    vi.resetModules()
    const { inProcessPair, throttled } = await import('../src/mpc/transport.js')
    const [a, b] = inProcessPair()
    const link = throttled(a, { delaySeconds: 0.001, bandwidthBitsPerSecond: 1e9 })
    const sent = performance.now()
    link.send(new BigInt64Array([1n, 2n]))
    link.send(new BigInt64Array([3n]))
    const first = await Promise.race([b.recv(), new Promise<null>((r) => setTimeout(() => r(null), 2000))])
    expect(first).toEqual(new BigInt64Array([1n, 2n]))
    expect(performance.now() - sent).toBeGreaterThanOrEqual(1)
    expect(await b.recv()).toEqual(new BigInt64Array([3n]))
    link.close()
    b.close()
  })
})

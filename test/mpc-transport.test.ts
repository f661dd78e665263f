import { describe, expect, it } from 'vitest'
import { LAN, WAN, customNetwork, modelledSeconds } from '../src/mpc/cost.js'
import { encodeFixed } from '../src/mpc/engine.js'
import { operatorTable } from '../src/mpc/report.js'
import { createParty, runBoth } from '../src/mpc/session.js'
import { connectLoopback, listenLoopback } from '../src/mpc/socket.js'
import { spuEstimate } from '../src/mpc/spu-estimate.js'
import { throttled } from '../src/mpc/transport.js'
import { mpcVsPlain, wasmRing } from './mpc-helpers.js'

describe('transports', () => {
  it('the loopback socket delivers frames of any size in order, and a multiply over it is correct', async () => {
    const l = listenLoopback()
    const [a, b] = await Promise.all([l.transport, connectLoopback(await l.ready)])
    const sizes = [1, 3, 100_000, 5, 192, 384, 0, 7]
    for (const s of sizes) a.send(new BigInt64Array(s).fill(BigInt(s)))
    for (const s of sizes) {
      const got = await b.recv()
      expect(got.length).toBe(s)
      if (s) expect(got[s - 1]).toBe(BigInt(s))
    }
    const ring = await wasmRing()
    const parties = [createParty(0, a, ring), createParty(1, b, ring)] as const
    const x = encodeFixed([1.5, -2], 18)
    const [z0, z1] = await runBoth([parties[0], parties[1]], (p) => p.mul(p.id === 0 ? x : new BigInt64Array(2), p.id === 0 ? new BigInt64Array(2) : x))
    expect(Array.from(ring.add(z0, z1))).toEqual(Array.from(encodeFixed([2.25, 4], 18)))
    a.close()
    b.close()
  })

  it('the link-limited transport keeps order and adds its delay and serialisation time', async () => {
    const l = listenLoopback()
    const [a, b] = await Promise.all([l.transport, connectLoopback(await l.ready)])
    const slow = throttled(a, { delaySeconds: 0.02, bandwidthBitsPerSecond: 8e6 }) // 1 MB/s
    const t0 = performance.now()
    for (const s of [10_000, 1, 2_500, 1]) slow.send(new BigInt64Array(s).fill(BigInt(s)))
    const got: number[] = []
    for (let i = 0; i < 4; i++) got.push((await b.recv()).length)
    const ms = performance.now() - t0
    expect(got).toEqual([10_000, 1, 2_500, 1])
    expect(ms).toBeGreaterThanOrEqual(20 + (12_502 * 8 * 8) / 8e3 - 1) // delay + 100 KB at 1 MB/s
    expect(() => throttled(a, { delaySeconds: -1, bandwidthBitsPerSecond: 1 })).toThrow(/delay .* got -1/)
    a.close()
    b.close()
  })
})

describe('cost reports', () => {
  it('model a round as half a round trip and bytes at the link rate', () => {
    const c = { rounds: 10, bytesSent: 1_250_000, offlineBytes: 0 }
    expect(modelledSeconds(c, LAN)).toBeCloseTo(10 * 0.05e-3 + 1e-3, 12)
    expect(modelledSeconds(c, WAN)).toBeCloseTo(10 * 5e-3 + 10e-3, 12)
    expect(modelledSeconds(c, customNetwork(1e6, 0))).toBeCloseTo(10, 12)
    expect(() => customNetwork(0, 1)).toThrow(/bandwidth .* got 0/)
  })

  it('list each operator inclusively and the total once', async () => {
    const { costs } = await mpcVsPlain([encodeFixed([1, 2, 3], 18)], async (e, [x]) => e.ltz(await e.mul(x, x)), { trunc: 'one-round' })
    const table = operatorTable(costs[0])
    expect(table).toMatch(/^operator\s+calls\s+rounds/)
    // the product itself and the Beaver product inside ltz's B2A
    expect(costs[0].byOp.get('mul')).toMatchObject({ calls: 2, rounds: 2, bytesSent: 48 + 48 })
    expect(costs[0].byOp.get('ltz')).toMatchObject({ calls: 1, rounds: 8, bytesSent: 3 * 208 })
    expect(costs[0].byOp.get('trunc')).toMatchObject({ calls: 1, rounds: 1, bytesSent: 24 })
    expect(costs[0].byOp.get('open')).toMatchObject({ calls: 1, rounds: 1, bytesSent: 24 }) // inside trunc
    expect(costs[0].total).toMatchObject({ rounds: 1 + 1 + 8, bytesSent: 48 + 24 + 3 * 208 })
  })

  it('cost a traced program with SPU\'s published semi2k and ABY3 formulas', async () => {
    const { costs } = await mpcVsPlain([encodeFixed([1, 2], 18), encodeFixed([1, 2, 3, 4, 5, 6], 18)], async (e, [x, y]) => {
      const z = await e.matmul(x, y, 1, 2, 3)
      return e.ltz(z)
    }, { trunc: 'one-round' })
    expect(costs[0].kernels.map((k) => k.kernel)).toEqual(['mmul_aa', 'trunc_a', 'a2b', 'b2a'])
    const K = 64, N = 3
    const semi = spuEstimate(costs[0].kernels, 'semi2k')
    // mmul: 2K(N-1) x (km + mn)/2 with k=1, m=2, n=3; trunc: K(N-1) x 3; a2b: (2 log K + 1) 2K (N-1)^2 x 3; b2a: K(N-1) x 3
    expect(semi.rounds).toBe(1 + 1 + (6 + 1) * 2 + 1)
    expect(semi.bytesSent).toBe((2 * K * (N - 1) * 4 + K * (N - 1) * 3 + 13 * 2 * K * 4 * 3 + K * (N - 1) * 3) / 8)
    const aby3 = spuEstimate(costs[0].kernels, 'aby3')
    expect(aby3.rounds).toBe(1 + 3 + 8 + 1)
    expect(aby3.bytesSent).toBe((K * 3 + 4 * K * 3 + (6 * K + 2 * K) * 3 + K * 3) / 8)
    expect(aby3.assumed).toEqual(['b2a'])
    expect(() => spuEstimate([], 'aby3', 4)).toThrow(/3-party/)
  })
})

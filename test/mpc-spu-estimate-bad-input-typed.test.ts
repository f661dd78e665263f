/**
 * kvkit/mpc's spuEstimate refuses what it cannot cost with SpuEstimateError naming the value, before any
 * costing: a bad protocol or party count was a built-in RangeError, an unknown kernel in the trace
 * "f.latency is not a function", a bad element count or ring size an estimate of NaN; spuSeconds read a
 * bad network as NaN seconds (now modelledSeconds's NetworkModelError).
 */
import { describe, expect, it } from 'vitest'
import * as mpc from '../src/mpc/index.js'
import type { KernelCall } from '../src/mpc/cost.js'

const call: KernelCall = { kernel: 'mul_aa', elements: 4 }
const SpuEstimateError = (mpc as Record<string, unknown>).SpuEstimateError as new () => Error

describe('spuEstimate and spuSeconds refuse bad input naming it', () => {
  it.each([
    [[[call], 'spdz'], `protocol must be 'semi2k' or 'aby3', got "spdz"`],
    [[[call], 'semi2k', 1.5], 'parties must be an integer >= 2, got 1.5'],
    [[[call], 'aby3', 4], 'ABY3 is a 3-party protocol, got 4 parties'],
    [[[call], 'semi2k', 3, 0], 'ringBits must be an integer >= 2, got 0'],
    [['mul_aa', 'semi2k'], 'trace must be a list of kernel calls (CostLog.kernels), got "mul_aa"'],
    [[[call, { kernel: 'conv', elements: 1 }], 'semi2k'], 'trace[1] is not a call of one of SPU\'s kernels'],
    [[[{ kernel: 'a2p', elements: Number.NaN }], 'aby3'], 'trace[0].elements must be a non-negative count, got NaN'],
    [[[{ kernel: 'mmul_aa', elements: 4, shape: [2, 2] }], 'semi2k'], 'trace[0].shape must be [k, m, n] of non-negative integers, got [2,2]'],
  ] as [unknown[], string][])('spuEstimate(%j): SpuEstimateError', (args, message) => {
    expect(SpuEstimateError).toBeTypeOf('function')
    const run = () => (mpc.spuEstimate as (...a: unknown[]) => unknown)(...args)
    expect(run).toThrow(SpuEstimateError)
    expect(run).toThrow(`spuEstimate: ${message}`)
  })

  it('spuSeconds: a bad network is a NetworkModelError, a bad estimate a SpuEstimateError', () => {
    const e = mpc.spuEstimate([call], 'semi2k')
    expect(mpc.spuSeconds(e, mpc.LAN)).toBeGreaterThan(0)
    expect(() => mpc.spuSeconds(e, { name: 'x', bandwidthBitsPerSecond: 0, rttSeconds: 1 })).toThrow(mpc.NetworkModelError)
    expect(() => mpc.spuSeconds(e, null as never)).toThrow('spuSeconds: net must be a NetworkModel')
    expect(() => mpc.spuSeconds({ ...e, rounds: Number.NaN }, mpc.LAN)).toThrow(SpuEstimateError)
  })
})

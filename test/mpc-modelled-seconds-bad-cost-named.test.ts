/**
 * modelledSeconds refuses a Cost that is not one with a CostError naming the field (and a network that is
 * not one with a NetworkModelError): a misspelt or missing field read as undefined and the modelled time
 * came back NaN, shown as "NaN ms" in the cost tables.
 */
import { describe, expect, it } from 'vitest'
import { CostError, LAN, NetworkModelError, modelledSeconds, type Cost, type NetworkModel } from '../src/mpc/index.js'

const ok: Cost = { rounds: 3, bytesSent: 1000, offlineBytes: 0 }

describe('modelledSeconds checks its arguments', () => {
  it.each([
    [{ rounds: 3, bytes: 1000, offlineBytes: 0 }, 'modelledSeconds: cost.bytesSent must be a non-negative finite number, got undefined'],
    [{ ...ok, rounds: '3' }, 'modelledSeconds: cost.rounds must be a non-negative integer, got "3"'],
    [{ ...ok, rounds: 1.5 }, 'modelledSeconds: cost.rounds must be a non-negative integer, got 1.5'],
    [{ ...ok, bytesSent: NaN }, 'modelledSeconds: cost.bytesSent must be a non-negative finite number, got NaN'],
    [{ ...ok, bytesSent: -8 }, 'modelledSeconds: cost.bytesSent must be a non-negative finite number, got -8'],
    [{ rounds: 3, bytesSent: 1000 }, 'modelledSeconds: cost.offlineBytes must be a non-negative finite number, got undefined'],
    [null, 'modelledSeconds: cost must be an object { rounds, bytesSent, offlineBytes }, got null'],
  ])('cost %j: CostError naming the field', (cost, message) => {
    expect(() => modelledSeconds(cost as unknown as Cost, LAN)).toThrow(CostError)
    expect(() => modelledSeconds(cost as unknown as Cost, LAN)).toThrow(message)
  })

  it('a network without its figures: NetworkModelError naming the figure', () => {
    expect(() => modelledSeconds(ok, { name: 'x', bandwidth: 1e9, rttSeconds: 0 } as unknown as NetworkModel)).toThrow(new NetworkModelError('network: bandwidth must be a positive finite number of bits per second, got undefined'))
    expect(() => modelledSeconds(ok, undefined as unknown as NetworkModel)).toThrow(NetworkModelError)
  })

  it('a good cost is priced as before', () => {
    expect(modelledSeconds(ok, LAN)).toBeCloseTo(3 * 0.05e-3 + 8000 / 10e9, 15)
  })
})

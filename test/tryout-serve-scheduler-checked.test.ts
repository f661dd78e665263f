/**
 * KVScheduler (kvkit/serve) checks what it is given (RangeError naming it): `new KVScheduler(100, 0)` was
 * taken and every acquire then waited forever; a capacity given as a string compared as text; a
 * misspelt option (`ordr`) was ignored; `acquire(NaN)` was queued and, once admitted, made the reserved
 * count NaN, after which the scheduler admitted every request whatever its size. The scheduler stays
 * usable after a refused call.
 */
import { describe, expect, it } from 'vitest'
import { KVScheduler } from '../src/serve/scheduler.js'

describe('KVScheduler arguments', () => {
  it.each([
    [[100, 0], 'KVScheduler: parallel must be a positive integer, got 0'],
    [[100, 1.5], 'KVScheduler: parallel must be a positive integer, got 1.5'],
    [['100', 1], 'KVScheduler: capacityTokens must be a non-negative integer, got "100"'],
    [[-1, 1], 'KVScheduler: capacityTokens must be a non-negative integer, got -1'],
    [[100, 1, { ordr: 'fcfs' }], 'KVScheduler: unknown option "ordr"; options: order, agingMs, now'],
    [[100, 1, { now: 5 }], 'KVScheduler: now must be a function, got number'],
  ] as [unknown[], string][])('new KVScheduler(%j): RangeError', (args, message) => {
    const make = () => new (KVScheduler as unknown as new (...a: unknown[]) => KVScheduler)(...args)
    expect(make).toThrow(RangeError)
    expect(make).toThrow(message)
  })

  it('acquire of tokens that are not a count rejects and leaves the reservations as they were', async () => {
    const s = new KVScheduler(100, 4)
    for (const bad of [NaN, -5, 2.5, '10']) {
      await expect(s.acquire(bad as number)).rejects.toThrow(`KVScheduler: tokens must be a non-negative integer, got ${typeof bad === 'string' ? `"${bad}"` : bad}`)
    }
    expect(s.reserved).toBe(0)
    const release = await s.acquire(60)
    expect(s.reserved).toBe(60)
    // 60 + 50 > 100: it waits until the first is released
    let started = false
    const second = s.acquire(50).then((r) => ((started = true), r))
    await new Promise((r) => setTimeout(r, 10))
    expect(started).toBe(false)
    release()
    ;(await second)()
    expect(s.reserved).toBe(0)
  })
})

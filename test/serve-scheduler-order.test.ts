import { describe, expect, it } from 'vitest'
import { KVScheduler, type Release } from '../src/serve/scheduler.js'

// The server's queue in KVShare's cache-aware order, on a hand-driven clock: hand-worked start orders
// against first come first served, and aging that lets a request that reuses nothing go before later,
// better-hitting ones.
const tick = () => new Promise((r) => setImmediate(r))

/** one running request, then waiters [name, hitRate, arrival ms]; returns the order they start in */
async function startOrder(order: 'fcfs' | 'kvshare', agingMs: number, waiters: [string, number, number][], releaseAt: number): Promise<string[]> {
  let t = 0
  const s = new KVScheduler(100, 1, { order, agingMs, now: () => t })
  const first = await s.acquire(10)
  const started: string[] = []
  const releases = new Map<string, Release>()
  for (const [name, hit, at] of waiters) {
    t = at
    void s.acquire(10, undefined, hit).then((r) => {
      started.push(name)
      releases.set(name, r)
    })
  }
  t = releaseAt
  first()
  for (let i = 0; i < waiters.length; i++) {
    await tick()
    releases.get(started[started.length - 1])!()
  }
  await tick()
  expect(s.running).toBe(0)
  return started
}

describe('KVScheduler order', () => {
  it("'kvshare' starts the highest hit rate plus wait / agingMs first; 'fcfs' keeps arrival order", async () => {
    // at 100 ms, over 10 s of aging: A 0 + 0.01, B 0.9 + 0.009, C 0.5 + 0.008 -> B, then C (0.508 > 0.01), then A
    const w: [string, number, number][] = [['A', 0, 0], ['B', 0.9, 10], ['C', 0.5, 20]]
    expect(await startOrder('kvshare', 10000, w, 100)).toEqual(['B', 'C', 'A'])
    expect(await startOrder('fcfs', 10000, w, 100)).toEqual(['A', 'B', 'C'])
  })

  it('ages: a request that reuses nothing goes before one arriving more than agingMs later, whatever its hit rate', async () => {
    // at 2500 ms over 1 s of aging: A 0 + 2.5, B 1 + 0.5 (arrived 2000 ms after A)
    expect(await startOrder('kvshare', 1000, [['A', 0, 0], ['B', 1, 2000]], 2500)).toEqual(['A', 'B'])
    // without the head start, B's hit rate wins: A 0 + 0.5, B 1 + 0.4
    expect(await startOrder('kvshare', 1000, [['A', 0, 0], ['B', 1, 100]], 500)).toEqual(['B', 'A'])
  })

  it.each([
    ['order', { order: 'lifo' as never }, 'lifo'],
    ['agingMs', { agingMs: 0 }, 'got 0'],
  ])('a bad %s is a RangeError naming it', (_n, o, named) => {
    expect(() => new KVScheduler(100, 1, o)).toThrow(RangeError)
    expect(() => new KVScheduler(100, 1, o)).toThrow(named)
  })
})

import { describe, expect, it } from 'vitest'
import { KVScheduler, type QueueOrder, type Release } from '../src/serve/scheduler.js'

// The server's queue in KVShare's cache-aware order and Continuum's order by program, on a hand-driven
// clock: hand-worked start orders against first come first served, and aging that lets a request that
// reuses nothing go before later, better-hitting ones.
const tick = () => new Promise((r) => setImmediate(r))

/** one running request (of `firstProgram`), then waiters [name, hitRate, arrival ms, program]; returns the order they start in */
async function startOrder(order: QueueOrder, agingMs: number, waiters: [string, number, number, string?][], releaseAt: number, firstProgram?: string): Promise<string[]> {
  let t = 0
  const s = new KVScheduler(100, 1, { order, agingMs, now: () => t })
  const first = await s.acquire(10, undefined, 0, firstProgram)
  const started: string[] = []
  const releases = new Map<string, Release>()
  for (const [name, hit, at, program] of waiters) {
    t = at
    void s.acquire(10, undefined, hit, program).then((r) => {
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

  it("'program' serves agent programs first come first served: a call ranks by its program's first arrival (Continuum)", async () => {
    // p1 was first seen at 0 (the running call), p2 at 10; D has no program: its own arrival, 15
    const w: [string, number, number, string?][] = [['A', 0, 10, 'p2'], ['B', 0, 20, 'p1'], ['D', 0, 25], ['C', 0, 30, 'p2']]
    expect(await startOrder('program', 10000, w, 100, 'p1')).toEqual(['B', 'A', 'C', 'D'])
    expect(await startOrder('fcfs', 10000, w, 100, 'p1')).toEqual(['A', 'B', 'D', 'C'])
  })

  it.each([
    ['order', { order: 'lifo' as never }, 'lifo'],
    ['agingMs', { agingMs: 0 }, 'got 0'],
  ])('a bad %s is a RangeError naming it', (_n, o, named) => {
    expect(() => new KVScheduler(100, 1, o)).toThrow(RangeError)
    expect(() => new KVScheduler(100, 1, o)).toThrow(named)
  })
})

import { describe, expect, it } from 'vitest'
import { editedPairTrace, prefillTokens, simulateShare, type ShareRequest } from '../src/reuse/kvshare-scheduler.js'
import { ReuseError } from '../src/reuse/errors.js'

// KVShare's cache-aware scheduler on a virtual clock: a hand-worked order, mean time to first token
// against first come first served on edited request pairs, and a wait bound under an adversarial stream
// that holds with aging and fails without it.
const cost = { prefillMsPerToken: 0.5, decodeMsPerToken: 10 }
const req = (id: number, arrival: number, tokens: number, source: number | null, shared: number, outputTokens = 0): ShareRequest => ({ id, arrival, tokens, source, shared, outputTokens })

/** the longest a request can take: its full prefill and its decode */
const serviceMax = (r: ShareRequest) => r.tokens * cost.prefillMsPerToken + r.outputTokens * cost.decodeMsPerToken

describe('KVShare scheduler', () => {
  it('serves the waiting request with the highest hit rate first (a hand-worked trace)', () => {
    // A (1000 tokens) runs 0..500; meanwhile B (no source), C (edit of A, 900 of 1000 shared) and D
    // (edit of A, 500 shared) arrive. At 500, hit rates: B 0, C 0.9, D 0.5, waits 400/300/200 ms over
    // 10 s of aging: C first (0.93), prefilling 100 + 135 tokens: 117.5 ms; then D (0.5 + 0.0317 > B's
    // 0.0517): 500 + 75 tokens, 287.5 ms; then B.
    const trace = [req(0, 0, 1000, null, 0), req(1, 100, 1000, null, 0), req(2, 200, 1000, 0, 900), req(3, 300, 1000, 0, 500)]
    const r = simulateShare(trace, { ...cost, policy: 'kvshare' })
    expect(r.order).toEqual([0, 2, 3, 1])
    expect(r.ttft).toEqual([500, 500 + 1000 * 0.5 - 100 + 117.5 + 287.5, 500 + 117.5 - 200, 500 + 117.5 + 287.5 - 300])
    expect(r.hits).toBe(2)
    const f = simulateShare(trace, { ...cost, policy: 'fcfs' })
    expect(f.order).toEqual([0, 1, 2, 3])
    expect(prefillTokens(trace[2], true, 0.15)).toBe(235)
  })

  it.each([1, 2, 3, 4, 5])('beats first come first served on mean time to first token on edited pairs (seed %i, load about 0.9, edits 5 s after their originals on average)', (seed) => {
    // a pair's mean service: about 2000 tokens x 0.5 ms twice (the edit's prefill a fifth of it) plus 2 x 40 decode tokens x 10 ms
    const trace = editedPairTrace(seed, { pairs: 100, intervalMs: 2300, gapMs: 5000 })
    const share = simulateShare(trace, { ...cost, policy: 'kvshare' })
    const fcfs = simulateShare(trace, { ...cost, policy: 'fcfs' })
    expect(share.meanTtft).toBeLessThan(fcfs.meanTtft)
    // the same work: every edit found its original cached under both (originals arrive first and go first)
    expect([share.hits, fcfs.hits]).toEqual([100, 100])
  })

  it('bounds every wait under an adversarial stream: with aging, nothing waits longer than the work that arrived before agingMs after it; without, it starves', () => {
    // a source, a request that reuses nothing, then edits of the source arriving faster than they are served
    const agingMs = 5000
    const trace = [req(0, 0, 200, null, 0), req(1, 1, 2000, null, 0)]
    for (let k = 0; k < 300; k++) trace.push(req(2 + k, 2 + 100 * k, 1000, 0, 990, 20))
    const r = simulateShare(trace, { ...cost, policy: 'kvshare', agingMs })
    trace.forEach((x, i) => {
      const before = trace.filter((y, j) => j !== i && y.arrival < x.arrival + agingMs).reduce((s, y) => s + serviceMax(y), 0)
      expect(r.wait[i]).toBeLessThanOrEqual(before)
    })
    const bound = trace.filter((y) => y.id !== 1 && y.arrival < 1 + agingMs).reduce((s, y) => s + serviceMax(y), 0)
    const starved = simulateShare(trace, { ...cost, policy: 'kvshare', agingMs: Infinity })
    expect(starved.wait[1]).toBeGreaterThan(bound)
    expect(starved.order[starved.order.length - 1]).toBe(1)
  })

  it.each([
    ['ratio 2', [req(0, 0, 10, null, 0)], { ratio: 2 }],
    ['agingMs 0', [req(0, 0, 10, null, 0)], { agingMs: 0 }],
    ['shares 20 of 10', [req(0, 0, 10, null, 20)], {}],
    ['source 7', [req(0, 0, 10, 7, 5)], {}],
  ])('%s is a ReuseError naming it', (name, trace, o) => {
    const f = () => simulateShare(trace as ShareRequest[], { ...cost, policy: 'kvshare', ...o })
    expect(f).toThrow(ReuseError)
    expect(f).toThrow(name.split(' ').slice(-1)[0])
  })
})

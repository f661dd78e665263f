import { describe, expect, it } from 'vitest'
import { chooseTtl, simulateAgents, syntheticAgentTrace, type AgentProgram } from '../src/reuse/continuum.js'
import { ReuseError } from '../src/reuse/errors.js'

// Continuum's TTL choice and scheduler on a virtual clock, against hand-worked cases and, on synthetic
// traces (8 programs, 10-30 turns, log-normal tool durations, memory for about 3 contexts), against
// evict-on-finish with per-call FCFS.

describe('chooseTtl', () => {
  it.each([
    // observed, reload ms, share, TTL: argmax over t of P(D <= t) x reload - share x t (worked by hand)
    [[100, 200, 1000], 500, 0.1, 1000], // 156.7, 313.3, 400
    [[100, 200, 1000], 500, 0.5, 200], // 116.7, 233.3, 0
    [[1000, 100, 200], 500, 0.5, 200], // order of observation does not matter
    [[100], 5, 0.1, 0], // 5 - 10 < 0: pinning never pays
    [[], 500, 0.1, 0], // nothing learned yet
  ])('durations %j, reload %i ms, memory share %f -> TTL %i ms', (obs, reload, share, want) => {
    expect(chooseTtl(obs, reload, share)).toBe(want)
  })
})

describe('simulateAgents, hand-worked', () => {
  // prefill 1 ms a token, decode 2 ms a token; the third call finds the context pinned by the learned TTL
  const program: AgentProgram = {
    id: 0, arrival: 0, turns: [
      { newTokens: 100, outputTokens: 10, tool: 'x', toolMs: 50 },
      { newTokens: 20, outputTokens: 5, tool: 'x', toolMs: 40 },
      { newTokens: 10, outputTokens: 5, tool: null, toolMs: 0 },
    ],
  }
  const cfg = { budgetTokens: 1000, prefillMsPerToken: 1, decodeMsPerToken: 2 }
  it('evict-on-finish re-prefills the whole context every call: 120 + 50 + 140 + 40 + 155 = 505 ms', () => {
    expect(simulateAgents([program], { ...cfg, policy: 'evict-on-finish' })).toMatchObject({ jct: [505], hits: 0, calls: 3 })
  })
  it('continuum pins after the second call (TTL 50 learned from the first tool call) and prefills 10 tokens: 370 ms', () => {
    expect(simulateAgents([program], { ...cfg, policy: 'continuum' })).toMatchObject({ jct: [370], hits: 1, calls: 3 })
  })
  it('refuses a program whose context outgrows the budget', () => {
    expect(() => simulateAgents([program], { ...cfg, budgetTokens: 100, policy: 'continuum' })).toThrow(ReuseError)
  })
})

describe('simulateAgents on synthetic traces', () => {
  const run = (seed: number) => {
    const trace = syntheticAgentTrace(seed)
    const largest = Math.max(...trace.map((p) => p.turns.reduce((s, t) => s + t.newTokens + t.outputTokens, 0)))
    const cfg = { budgetTokens: 3 * largest, prefillMsPerToken: 0.5, decodeMsPerToken: 10 }
    return {
      trace, cfg,
      base: simulateAgents(trace, { ...cfg, policy: 'evict-on-finish' }),
      cont: simulateAgents(trace, { ...cfg, policy: 'continuum' }),
      worst: simulateAgents(trace, { ...cfg, policy: 'continuum', adversarial: true }),
    }
  }
  it.each([1, 2, 3, 4])('seed %i: mean job completion time at most 0.8x of evict-on-finish with FCFS, budget never exceeded', (seed) => {
    const { trace, cfg, base, cont } = run(seed)
    expect(trace.length).toBe(8)
    for (const p of trace) expect(p.turns.length).toBeGreaterThanOrEqual(10)
    expect(cont.meanJct).toBeLessThanOrEqual(0.8 * base.meanJct)
    expect(cont.peakTokens).toBeLessThanOrEqual(cfg.budgetTokens)
    expect(cont.hits).toBeGreaterThan(0)
  })
  it.each([1, 2, 3, 4])('seed %i: when every tool call outlasts its TTL, at most 1.05x of evict-on-finish and no hit', (seed) => {
    const { cfg, base, worst } = run(seed)
    expect(worst.hits).toBe(0)
    expect(worst.meanJct).toBeLessThanOrEqual(1.05 * base.meanJct)
    expect(worst.peakTokens).toBeLessThanOrEqual(cfg.budgetTokens)
  })
})

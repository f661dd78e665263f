/**
 * The scheduling simulators (Continuum's TTL and agent scheduler, KVShare's cache-aware scheduler) and
 * their synthetic traces refuse a value of the wrong type or range with a ReuseError naming it, before
 * any work: chooseTtl('x') spread the string into characters and answered a TTL of 0; ratio '0.2'
 * passed a range check that coerces and ran; programs: -1 gave an empty trace (mean JCT NaN).
 */
import { describe, expect, it } from 'vitest'
import { chooseTtl, simulateAgents, syntheticAgentTrace, type AgentProgram } from '../src/reuse/continuum.js'
import { editedPairTrace, simulateShare, type ShareRequest } from '../src/reuse/kvshare-scheduler.js'
import { ReuseError } from '../src/reuse/errors.js'

const program: AgentProgram = { id: 0, arrival: 0, turns: [{ newTokens: 10, outputTokens: 2, tool: null, toolMs: 0 }] }
const agents = { budgetTokens: 100, prefillMsPerToken: 1, decodeMsPerToken: 1, policy: 'continuum' as const }
const request: ShareRequest = { id: 0, arrival: 0, tokens: 10, source: null, shared: 0, outputTokens: 1 }
const share = { prefillMsPerToken: 1, decodeMsPerToken: 1, policy: 'kvshare' as const }

describe('the scheduling simulators refuse bad values by name', () => {
  it.each<[string, () => unknown, string]>([
    ['chooseTtl, observed a string', () => chooseTtl('x' as never, 500, 0.1), 'chooseTtl: observed must be an array of tool durations (ms), got "x"'],
    ['chooseTtl, a duration a string', () => chooseTtl([100, '200' as never], 500, 0.1), 'chooseTtl: observed[1] must be a finite number >= 0, got "200"'],
    ['chooseTtl, reloadMs NaN', () => chooseTtl([100], NaN, 0.1), 'chooseTtl: reloadMs must be a finite number >= 0, got NaN'],
    ['chooseTtl, share a string', () => chooseTtl([100], 500, '0.1' as never), 'chooseTtl: share must be a finite number >= 0, got "0.1"'],
    ['simulateShare, ratio a string', () => simulateShare([request], { ...share, ratio: '0.2' as never }), 'simulateShare: ratio must be a finite number in [0, 1], got "0.2"'],
    ['simulateShare, a policy it does not have', () => simulateShare([request], { ...share, policy: 'lru' as never }), `simulateShare: policy must be 'kvshare' or 'fcfs', got "lru"`],
    ['simulateShare, agingMs a string', () => simulateShare([request], { ...share, agingMs: '5000' as never }), 'simulateShare: agingMs must be positive (Infinity: no aging), got "5000"'],
    ['simulateAgents, budgetTokens a string', () => simulateAgents([program], { ...agents, budgetTokens: '100' as never }), 'simulateAgents: budgetTokens must be positive, got "100"'],
    ['simulateAgents, a misspelt option', () => simulateAgents([program], { ...agents, adversarail: true } as never), 'simulateAgents: unknown option "adversarail"; options: budgetTokens, prefillMsPerToken, decodeMsPerToken, policy, adversarial'],
    ['simulateAgents, a policy it does not have', () => simulateAgents([program], { ...agents, policy: 'fcfs' as never }), `simulateAgents: policy must be 'continuum' or 'evict-on-finish', got "fcfs"`],
    ['syntheticAgentTrace, programs -1', () => syntheticAgentTrace(1, { programs: -1 }), 'syntheticAgentTrace: programs must be an integer >= 1, got -1'],
    ['syntheticAgentTrace, programs 2.5', () => syntheticAgentTrace(1, { programs: 2.5 }), 'syntheticAgentTrace: programs must be an integer >= 1, got 2.5'],
    ['syntheticAgentTrace, seed a string', () => syntheticAgentTrace('1' as never), 'syntheticAgentTrace: seed must be an integer >= 0, got "1"'],
    ['syntheticAgentTrace, spreadMs Infinity', () => syntheticAgentTrace(1, { spreadMs: Infinity }), 'syntheticAgentTrace: spreadMs must be a finite number >= 0, got Infinity'],
    ['editedPairTrace, pairs a string', () => editedPairTrace(1, { pairs: '3' as never }), 'editedPairTrace: pairs must be an integer >= 1, got "3"'],
    ['editedPairTrace, a misspelt option', () => editedPairTrace(1, { gap: 10 } as never), 'editedPairTrace: unknown option "gap"; options: pairs, intervalMs, gapMs'],
  ])('%s: a ReuseError naming it', (_, call, message) => {
    expect(call).toThrow(new ReuseError(message))
  })

  it('still takes good values', () => {
    expect(chooseTtl([100, 200, 1000], 500, 0.1)).toBe(1000)
    expect(syntheticAgentTrace(1, { programs: 3, spreadMs: 0 })).toHaveLength(3)
    expect(editedPairTrace(1, { pairs: 2 })).toHaveLength(4)
    expect(simulateShare([request], { ...share, ratio: 0.2, agingMs: Infinity }).order).toEqual([0])
    expect(simulateAgents([program], agents).calls).toBe(1)
  })
})

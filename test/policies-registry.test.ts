import { describe, expect, it } from 'vitest'
import { createPolicy, listPolicies, parsePolicySpec, registerPolicy } from '../src/policies/registry.js'
import type { ModelShape } from '../src/policies/types.js'

const model: ModelShape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }

describe('parsePolicySpec', () => {
  it('reads a bare name, typed options and compositions', () => {
    expect(parsePolicySpec('full')).toEqual({ name: 'full', options: {} })
    expect(parsePolicySpec('SnapKV')).toEqual({ name: 'snapkv', options: {} })
    expect(parsePolicySpec('snapkv:budget=0.25,window=32,pooling=avg,sinks=4')).toEqual({
      name: 'snapkv', options: { budget: 0.25, window: 32, pooling: 'avg', sinks: 4 },
    })
    expect(parsePolicySpec('h2o:normalize=true').options.normalize).toBe(true)
    expect(parsePolicySpec('snapkv:budget=0.25+think:ratio=0.4')).toEqual({
      name: 'snapkv+think', options: { 'snapkv.budget': 0.25, 'think.ratio': 0.4 },
    })
  })
  it('rejects malformed specs naming the bad part', () => {
    expect(() => parsePolicySpec('snapkv:budget')).toThrow(/budget/)
    expect(() => parsePolicySpec('snapkv:budget=')).toThrow(/budget/)
    expect(() => parsePolicySpec('snapkv:a=1,a=2')).toThrow(/twice/)
    expect(() => parsePolicySpec('')).toThrow(/empty/)
    expect(() => parsePolicySpec('9x')).toThrow(/9x/)
  })
  it('names the whole composition when one of its parts is malformed', () => {
    expect(() => parsePolicySpec('snapkv++think')).toThrow(/"snapkv\+" .* \(part 1 of 2 of the composition "snapkv\+\+think"\)/)
    expect(() => parsePolicySpec('snapkv:budget=0.25+think:ratio')).toThrow(/part 2 of 2 of the composition "snapkv:budget=0.25\+think:ratio"/)
  })
})

describe('createPolicy', () => {
  it('returns null for full and a policy for every listed name', () => {
    expect(createPolicy('full', model)).toBeNull()
    for (const p of listPolicies()) {
      // trimkv cannot act without its gates file: refused at creation, naming the option
      if (p.name === 'trimkv') {
        expect(() => createPolicy(p.name, model)).toThrow(/gatesFile/)
        continue
      }
      const policy = createPolicy(p.name, model)
      expect(policy?.name).toBe(p.name)
    }
  })
  it('lists the token-eviction family with options and defaults', () => {
    const names = listPolicies().map((p) => p.name)
    for (const n of ['streamingllm', 'h2o', 'snapkv', 'pyramidkv', 'adakv', 'knorm', 'tova']) expect(names).toContain(n)
    const snap = listPolicies().find((p) => p.name === 'snapkv')!
    expect(snap.options.find((o) => o.name === 'window')?.default).toBe(32)
    expect(snap.options.find((o) => o.name === 'budget')?.default).toBe(0.25)
  })
  it('asks for a pre-RoPE cache only for StreamingLLM with rerotate=true', () => {
    expect(createPolicy('streamingllm:rerotate=true', model)!.needs.cacheKeys).toBe('pre-rope')
    expect(createPolicy('streamingllm', model)!.needs.cacheKeys).toBeUndefined()
  })
  it('errors on an unknown policy listing what exists', () => {
    expect(() => createPolicy('snapky', model)).toThrow(/snapky.*known policies: full, .*snapkv/)
  })
  it('errors on an unknown option listing the options', () => {
    expect(() => createPolicy('snapkv:windw=3', model)).toThrow(/windw.*window/)
  })
  it('errors on budgets out of range, naming the value', () => {
    for (const b of ['0', '-0.1', '1.5']) expect(() => createPolicy(`snapkv:budget=${b}`, model)).toThrow(new RegExp(`budget=${b.replace('.', '\\.')}.*out of range`))
    expect(() => createPolicy('snapkv:budget=half', model)).toThrow(/budget="half" is not a number/)
    expect(() => createPolicy('snapkv:tokens=0', model)).toThrow(/tokens=0/)
    expect(() => createPolicy('snapkv:tokens=2.5', model)).toThrow(/tokens=2.5 is not an integer/)
    expect(() => createPolicy('snapkv:budget=0.5,tokens=100', model)).toThrow(/exclude each other/)
    expect(createPolicy('snapkv:budget=1', model)).not.toBeNull()
  })
  it('errors on malformed choices and booleans', () => {
    expect(() => createPolicy('snapkv:pooling=median', model)).toThrow(/pooling="median" is not one of max, avg, none/)
    expect(() => createPolicy('h2o:normalize=1', model)).toThrow(/normalize=1 is not a boolean/)
    expect(() => createPolicy('snapkv:kernel=4', model)).toThrow(/kernel=4/)
  })
  it('composes policies and merges what they need', () => {
    const p = createPolicy('tova:budget=0.5+snapkv:budget=0.25,window=16', model)!
    expect(p.name).toBe('tova+snapkv')
    expect(p.needs.observationWindow).toBe(16)
    expect(() => createPolicy('full+snapkv', model)).toThrow(/full/)
  })
  it('rejects a model shape that does not add up', () => {
    expect(() => createPolicy('snapkv', { ...model, group: 2 })).toThrow(/qHeads/)
  })
})

describe('registerPolicy', () => {
  it('adds a policy by name and refuses duplicates', () => {
    registerPolicy({
      name: 'test_keep_all', description: 'keeps everything', stage: 'eviction',
      options: [{ name: 'flag', type: 'boolean', default: false, description: 'a flag' }],
      create: (o) => ({ name: `test_keep_all(${o.flag})`, needs: {}, start: () => ({}) }),
    })
    expect(createPolicy('test_keep_all:flag=true', model)?.name).toBe('test_keep_all(true)')
    expect(() => registerPolicy({ name: 'snapkv', description: '', stage: 'eviction', options: [], create: () => ({ name: 'x', needs: {}, start: () => ({}) }) })).toThrow(/already registered/)
  })
})

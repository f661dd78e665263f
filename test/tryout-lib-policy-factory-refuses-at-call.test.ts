/**
 * A typed factory refuses a setting the policy cannot run when it is called, not at the first
 * generate: values the option's range cannot say (bit widths the packer lacks, even pooling kernels)
 * and options that exclude each other. It throws the class and message the same spec string gets
 * from createPolicy, so both ways share one check (PolicyDefinition.check).
 */
import { describe, expect, it } from 'vitest'
import * as factories from '../src/policies/factories.js'
import { createPolicy, PolicySpecError } from '../src/policies/registry.js'
import { policyFromSpec, type PolicyConfig } from '../src/policies/config.js'

const shape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }
const make = factories as unknown as Record<string, (o: object) => PolicyConfig>

function refusal(f: () => unknown): { kind: string; message: string } {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(PolicySpecError)
    return { kind: (e as Error).name, message: (e as Error).message }
  }
  throw new Error('expected a PolicySpecError')
}

// [factory, options, the same setting as a spec string, a part of the message naming the bad value]
const cases: [string, object, string, string][] = [
  ['kivi', { bits: 3 }, 'kivi:bits=3', 'got 3'],
  ['kivi', { bits: 6 }, 'kivi:bits=6', 'got 6'],
  ['mikv', { hi: 3 }, 'mikv:hi=3', 'got 3'],
  ['mikv', { lo: 6 }, 'mikv:lo=6', 'got 6'],
  ['mikv', { hi: 2, lo: 4 }, 'mikv:hi=2,lo=4', 'hi=2'],
  ['vidkv', { groupSize: 33 }, 'vidkv:groupSize=33', 'got 33'],
  ['snapkv', { kernel: 8 }, 'snapkv:kernel=8', 'kernel=8'],
  ['adakv', { kernel: 4 }, 'adakv:kernel=4', 'kernel=4'],
  ['pyramidkv', { kernel: 2 }, 'pyramidkv:kernel=2', 'kernel=2'],
  ['criticalkv', { kernel: 6 }, 'criticalkv:kernel=6', 'kernel=6'],
  ['criticaladakv', { kernel: 6 }, 'criticaladakv:kernel=6', 'kernel=6'],
  ['unionkv', { kernel: 6 }, 'unionkv:kernel=6', 'kernel=6'],
  ['unionkv', { span: 4 }, 'unionkv:span=4', 'got 4'],
  ['unionkv', { blockRank: false }, 'unionkv:blockRank=false', 'blockRank=false'],
  ['unionkv', { agnosticScore: 'mass', every: 16 }, 'unionkv:agnosticScore=mass,every=16', 'got 16'],
  ['unionkv', { lagShare: 0.5 }, 'unionkv:lagShare=0.5', 'lagShare=0.5'],
  ['unionkv', { agnosticScore: 'keydiff-lag', lagShare: 0.5 }, 'unionkv:agnosticScore=keydiff-lag,lagShare=0.5', 'got 0.5'],
  ['unionkv', { gatesFile: 'gates.json', every: 8 }, 'unionkv:gatesFile=gates.json,every=8', 'got 8'],
  ['tokenselect', { pool: 4 }, 'tokenselect:pool=4', 'got 4'],
  ['mpcacheSelect', { block: 12 }, 'mpcache_select:block=12', 'block=12'],
  ['mpcacheSelect', { cluster: 40 }, 'mpcache_select:cluster=40', 'cluster=40'],
  ['razorattention', { heads: '1-2' }, 'razorattention:heads=1-2', '"1-2"'],
  ['trimkv', { budget: 0.25 }, 'trimkv:budget=0.25', 'gatesFile'],
]

describe('typed policy factories refuse a bad setting at the call', () => {
  it.each(cases)('%s(%j) throws as the spec string does, naming the value', (name, options, spec, named) => {
    const atCall = refusal(() => make[name](options))
    expect(atCall.message).toContain(named)
    expect(atCall).toEqual(refusal(() => createPolicy(spec, shape)))
    expect(atCall).toEqual(refusal(() => policyFromSpec(spec)))
  })

  it.each([
    ['kivi', { bits: 4 }], ['mikv', { hi: 4, lo: 2 }], ['snapkv', { kernel: 9 }], ['tokenselect', { pool: 3 }],
    ['mpcacheSelect', { cluster: 48, block: 16 }], ['unionkv', { agnosticScore: 'keydiff', blockRank: false }], ['razorattention', { heads: '1.0;3.1' }],
  ])('%s(%j), a setting the policy runs, is still made and built', (name, options) => {
    const config = make[name](options)
    expect(createPolicy(config.spec, shape)).not.toBeNull()
  })
})

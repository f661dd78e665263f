import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { fixturePrompt } from './threads-helpers.js'

// Parts that decide from the prompt as prefilled, composed after a part that changed the cache's slots,
// failed after the prefill, inside the method: KVzip's reconstruction picked slots past a head's end (a
// CacheError), Compactor, WindowKV, MPCache and TRIM-KV / UnionKV's gates threw plain Errors, and TOVA
// after SnapKV or PyramidKV ran, averaging the scores of different tokens slot by slot (each head keeps
// its own). Each is a PolicyCompositionError at creation, naming both parts; in the other order, or
// after a part that keeps the same slots in every head (StreamingLLM), they run.

const G = 'gatesFile=models/fixture-14m-trimkv/gates-M512.safetensors'
const WHOLE = ['kvzip:budget=0.5', 'compactor:budget=0.5']
const SHARED = ['tova:budget=0.5', 'windowkv:budget=0.5', 'mpcache', `trimkv:budget=0.5,${G}`, `unionkv:budget=0.5,${G}`]
const PER_HEAD = ['snapkv:budget=0.5', 'pyramidkv:budget=0.5', 'adakv:budget=0.5', 'kvmerger:budget=0.5', 'razorattention:budget=0.5,heads=0.0']

describe('a part reading the prompt as prefilled, after a part that changed the slots', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each([...PER_HEAD, 'streamingllm:budget=0.5'].flatMap((first) => WHOLE.map((then) => [first, then])))('%s then %s: refused at creation, "put it first"', (first, then) => {
    const name = then.split(':')[0]
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(`${name} reads the whole prompt as prefilled`)
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(`put ${name} first`)
  })

  it.each(PER_HEAD.flatMap((first) => SHARED.map((then) => [first, then])))('%s then %s: refused at creation, naming both', (first, then) => {
    const [a, b] = [first, then].map((s) => s.split(':')[0])
    expect(() => createPolicy(`${first}+${then}`, model.config)).toThrow(`${b} needs every KV head of a layer to hold the same tokens, and ${a} leaves each head its own`)
  })

  it('the generate call throws it before streaming a token', () => {
    const seen: number[] = []
    expect(() => model.generate(fixturePrompt(200), { maxNewTokens: 4, policy: 'snapkv:budget=0.5+tova:budget=0.5', onToken: (t: { id: number }) => void seen.push(t.id) })).toThrow(PolicyCompositionError)
    expect(seen).toEqual([])
  })

  it.each([
    ...[...WHOLE, ...SHARED].map((first) => [first, 'snapkv:budget=0.5']),
    ...SHARED.map((then) => ['streamingllm:budget=0.5', then]),
    ['tova:budget=0.5', 'windowkv:budget=0.5'],
    ['kvzip:budget=0.5', 'mikv:residual=0'],
  ])('%s then %s runs', async (first, then) => {
    expect((await model.generate(fixturePrompt(200), { maxNewTokens: 4, policy: `${first}+${then}` }).result).ids).toHaveLength(4)
  })
})

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { packedTokensPerHead } from '../src/policies/packed-budget.js'
import { fixturePrompt } from './threads-helpers.js'

// UnionKV with bits after a part that keeps one selection a layer, leaving the layers different counts
// (WindowKV's layer groups, MPCache's threshold): every head was sized from head (0, 0)'s count, and the
// model-wide union was as long as head (0, 0), cutting the longer heads' slots off. WindowKV then held
// 19.4% of the float16 cache's bytes at unionkv:budget=0.25 after budget=0.5 (12.5% asked), MPCache's
// longer heads kept fewer tokens than fit and held 28.8% (24.6% asked): a token short of a whole group
// stays float. Each head now keeps the most tokens its own rows fit, and the bytes stay within the share.

const ids = fixturePrompt(1000)

describe('UnionKV at a byte budget after layers of different counts', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  const run = async (policy: string) => {
    let kept: number[] = []
    const r = await model.generate(ids, { maxNewTokens: 1, kvDtype: 'float16', policy, onKept: (k) => void (k.stage === 'prefill' && (kept = k.kept.flat().map((x) => x.length))) }).result
    return { kept, bytes: r.stats.kvBytes.total }
  }

  it.each(['windowkv:budget=0.5,groupLayers=2', 'mpcache'])('after %s each head keeps what its own rows fit, and the bytes stay within a quarter of those it left', async (first) => {
    const before = await run(first)
    // the layers hold different counts: the case that was sized from head (0, 0)
    expect(new Set(before.kept).size).toBeGreaterThan(1)
    const after = await run(`${first}+unionkv:budget=0.25,bits=4`)
    expect(after.kept).toEqual(before.kept.map((n) => packedTokensPerHead(n, 0.25, 'int4', 64, 'float16')))
    const row = before.bytes / before.kept.reduce((a, b) => a + b + 1, 0) * before.kept.length
    // the last prompt token's row joins after the compression, in both runs
    expect(after.bytes).toBeLessThanOrEqual(0.25 * (before.bytes - row) + row)
  })
})

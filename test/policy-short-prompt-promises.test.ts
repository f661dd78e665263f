/**
 * Kind 1 of issue 8: the documented promises of every registered policy hold at every prompt length,
 * down to prompts as short as (or shorter than) its window, sinks or budget:
 * - every KV head that held tokens keeps at least one (AdaKV: its floor);
 * - the kept count never exceeds the budget (per head; AdaKV per layer; PyramidKV over the model);
 * - a budget at or above the prompt keeps the full cache, untouched;
 * - observation-window policies keep the window's newest tokens first (min(window, kept) newest).
 * Grid: every policy x prompt lengths {1, 2, 5, w-1, w, w+1, 2w, 100} x budgets, through generate on
 * a tiny random model, the decision seen from inside the runtime.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy, listPolicies } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { rng } from './kernels-helpers.js'
import { randomGatesFile, randomScoresFile, withOption } from './policy-grid-helpers.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
let gates = ''
let scores = ''
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
  gates = randomGatesFile(model.config)
  scores = randomScoresFile(model.config)
})
afterAll(() => model?.dispose())

type Scope = 'head' | 'layer' | 'model' | 'none'
/** spec, its window (newest tokens kept first; 0: none promised), how its budget counts, whether it takes one */
const CASES: { spec: () => string; name: string; window: number; scope: Scope; budgeted: boolean }[] = [
  { name: 'streamingllm', spec: () => 'streamingllm:sinks=4', window: 0, scope: 'head', budgeted: true },
  { name: 'h2o', spec: () => 'h2o', window: 0, scope: 'head', budgeted: true },
  { name: 'snapkv', spec: () => 'snapkv', window: 32, scope: 'head', budgeted: true },
  { name: 'snapkv', spec: () => 'snapkv:window=8,sinks=2', window: 8, scope: 'head', budgeted: true },
  { name: 'pyramidkv', spec: () => 'pyramidkv:window=8', window: 0, scope: 'model', budgeted: true },
  { name: 'adakv', spec: () => 'adakv:window=8', window: 8, scope: 'layer', budgeted: true },
  { name: 'knorm', spec: () => 'knorm', window: 0, scope: 'head', budgeted: true },
  { name: 'tova', spec: () => 'tova', window: 1, scope: 'head', budgeted: true },
  { name: 'keyformer', spec: () => 'keyformer:window=8', window: 0, scope: 'head', budgeted: true },
  { name: 'windowkv', spec: () => 'windowkv', window: 16, scope: 'head', budgeted: true },
  { name: 'razorattention', spec: () => 'razorattention:heads=0.0;3.1', window: 0, scope: 'none', budgeted: true },
  { name: 'think', spec: () => 'think:window=8,recent=2', window: 0, scope: 'none', budgeted: false },
  { name: 'kvmerger', spec: () => 'kvmerger:window=8', window: 8, scope: 'head', budgeted: true },
  { name: 'mpcache', spec: () => 'mpcache', window: 0, scope: 'head', budgeted: true },
  { name: 'trimkv', spec: () => `trimkv:gatesFile=${gates}`, window: 0, scope: 'head', budgeted: true },
  // sinks and recent tokens (or SnapKV's window) score +Infinity and tie: the oldest of them come first
  { name: 'lagkv', spec: () => 'lagkv:lag=4', window: 0, scope: 'head', budgeted: true },
  { name: 'kvzip', spec: () => 'kvzip:chunk=8', window: 0, scope: 'model', budgeted: true },
  { name: 'criticalkv', spec: () => 'criticalkv:window=8', window: 0, scope: 'head', budgeted: true },
  { name: 'criticaladakv', spec: () => 'criticaladakv:window=8', window: 0, scope: 'layer', budgeted: true },
  { name: 'compactor', spec: () => 'compactor:chunk=4,sketch=4', window: 0, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => 'unionkv', window: 16, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => 'unionkv:window=8,sinks=2,contrast=8,agnostic=0.25,lag=4', window: 8, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => `unionkv:window=8,agnostic=0.75,gatesFile=${gates}`, window: 8, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => `unionkv:window=8,agnostic=0.5,lagShare=0.25,lag=4,gatesFile=${gates}`, window: 8, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => 'unionkv:window=8,agnosticScore=keydiff-lag,lag=4', window: 8, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => 'unionkv:window=8,agnosticScore=keydiff,blockRank=false,span=3,lag=4', window: 8, scope: 'head', budgeted: true },
  { name: 'unionkv', spec: () => 'unionkv:window=8,agnosticScore=mass,lag=4', window: 8, scope: 'head', budgeted: true },
  // selection keeps every token (its budget is what a decode step attends to, pinned in selection.test.ts)
  { name: 'tokenselect', spec: () => 'tokenselect:tokens=4,first=1,last=1', window: 0, scope: 'none', budgeted: false },
  { name: 'quest', spec: () => 'quest:tokens=4,page=2,dense=1', window: 0, scope: 'none', budgeted: false },
  { name: 'nosa', spec: () => 'nosa:tokens=4,block=2', window: 0, scope: 'none', budgeted: false },
  { name: 'nosa', spec: () => `nosa:tokens=4,block=2,scoresFile=${scores}`, window: 0, scope: 'none', budgeted: false },
  { name: 'mpcache_select', spec: () => 'mpcache_select:cluster=4,block=2', window: 0, scope: 'none', budgeted: false },
  { name: 'delta', spec: () => 'delta:tokens=4,page=2,recent=1,full=1,interval=2', window: 0, scope: 'none', budgeted: false },
  { name: 'shadowkv', spec: () => 'shadowkv:tokens=4,chunk=2,outliers=1,sink=1,local=2,rank=4', window: 0, scope: 'none', budgeted: false },
  // KIVI evicts nothing: every slot stays, the oldest packed (checked in packed-cache.test.ts)
  { name: 'kivi', spec: () => 'kivi:residual=2', window: 0, scope: 'none', budgeted: false },
  // MiKV evicts nothing either: it reorders slots (important rows behind the others), so no window check
  { name: 'mikv', spec: () => 'mikv:residual=2', window: 0, scope: 'none', budgeted: false },
  // VidKV reorders slots too (salient rows behind the ternary ones)
  { name: 'vidkv', spec: () => 'vidkv:residual=2', window: 0, scope: 'none', budgeted: false },
]
const BUDGETS = ['tokens=1', 'tokens=3', 'budget=0.5', 'budget=1', 'tokens=200']

/** the policy, wrapped to record each head's positions before and after its prefill decision */
function recorded(policy: Policy, seen: { before: number[][]; after: number[][] }): Policy {
  return {
    ...policy,
    start() {
      const s = policy.start()
      return {
        ...s,
        onPrefillEnd(ctx) {
          const { layers, kvHeads } = ctx.model
          const heads = () => Array.from({ length: layers * kvHeads }, (_, i) => Array.from(ctx.cache.positions(Math.floor(i / kvHeads), i % kvHeads)))
          seen.before = heads()
          const d = s.onPrefillEnd?.(ctx)
          if (d) {
            ctx.cache.apply(d)
            s.onApplied?.(d, ctx)
          }
          seen.after = heads()
          return null
        },
      }
    },
  }
}

function budgetOf(option: string, n: number): number {
  const [k, v] = option.split('=')
  return k === 'tokens' ? Number(v) : Math.max(1, Math.floor(Number(v) * n))
}

describe('policy promises on short prompts', () => {
  it('covers every registered policy', () => {
    for (const p of listPolicies()) expect(CASES.some((c) => c.name === p.name), p.name).toBe(true)
  })

  it('every policy x prompt length x budget: a token per head, within budget, full at full budget, window first', async () => {
    const r = rng(9)
    const { layers, kvHeads } = model.config
    let cases = 0
    for (const c of CASES) {
      const w = c.window || 8
      for (const len of [...new Set([1, 2, 5, w - 1, w, w + 1, 2 * w, 100])].filter((x) => x >= 1)) {
        const prompt = Array.from({ length: len }, () => 1 + Math.floor(r() * 4000))
        for (const b of c.budgeted ? BUDGETS : ['']) {
          const spec = b ? withOption(c.spec(), b) : c.spec()
          const seen = { before: [] as number[][], after: [] as number[][] }
          await model.generate(prompt, { maxNewTokens: 1, policy: recorded(createPolicy(spec, model.config)!, seen) }).result
          const where = `${spec} on ${len} tokens`
          const n = len - 1
          seen.after.forEach((kept, i) => {
            if (n > 0) expect(kept.length, `${where}: head ${i} keeps a token`).toBeGreaterThanOrEqual(1)
          })
          if (!b) {
            // channel pruning and quantization keep every token (MiKV in another slot order)
            const sorted = (h: number[][]) => h.map((k) => [...k].sort((x, y) => x - y))
            expect(sorted(seen.after), where).toEqual(sorted(seen.before))
          } else {
            const B = budgetOf(b, n)
            if (B >= n) expect(seen.after, `${where}: a budget of ${B} keeps the full cache`).toEqual(seen.before)
            const sizes = seen.after.map((k) => k.length)
            if (c.scope === 'head') sizes.forEach((k, i) => expect(k, `${where}: head ${i} within ${B}`).toBeLessThanOrEqual(Math.min(B, n)))
            if (c.scope === 'layer')
              for (let l = 0; l < layers; l++) expect(sizes.slice(l * kvHeads, (l + 1) * kvHeads).reduce((a, x) => a + x, 0), `${where}: layer ${l}`).toBeLessThanOrEqual(Math.min(B, n) * kvHeads)
            if (c.scope === 'model') expect(sizes.reduce((a, x) => a + x, 0), where).toBeLessThanOrEqual(Math.min(B, n) * kvHeads * layers)
          }
          if (c.window) {
            seen.after.forEach((kept, i) => {
              const want = seen.before[i].slice(seen.before[i].length - Math.min(c.window, kept.length))
              expect(kept.slice(kept.length - want.length), `${where}: head ${i} keeps the window's newest tokens`).toEqual(want)
            })
          }
          cases++
        }
      }
    }
    // 26 specs x 8 lengths (tova: 4 distinct) x 5 budgets; think, the 7 selection specs, kivi, mikv and vidkv x 8 lengths
    expect(cases).toBe(1108)
  })
})

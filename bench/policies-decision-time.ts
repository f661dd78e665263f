/**
 * Decision time of the policies at prefill end (scoring, selection, merge weights, channel
 * scores) on a fixture-shaped cache (8 layers, 6 query / 2 KV heads, head_dim 64) of random tokens, at a
 * 25% budget where the method has one. Applying the decision is the cache's work and is not timed.
 * Ratios are against SnapKV measured in the same run.
 *   node dist/bench/policies-decision-time.js [tokens...]
 */
import { Bench } from 'tinybench'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { createPolicy } from '../src/policies/registry.js'
import { createTrimKV } from '../src/policies/trimkv.js'
import type { LayerHooks, ModelShape, Policy, PolicyContext } from '../src/policies/types.js'
import { fillRandomLayer, randn } from './random.js'

const model: ModelShape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }
const hidden = 384
const specs = [
  'snapkv:budget=0.25',
  'keyformer:budget=0.25',
  'windowkv:budget=0.25,task=qa',
  'razorattention:budget=0.25,heads=3.0;5.1;6.0',
  'think:ratio=0.4',
  'kvmerger:budget=0.25',
  'mpcache:budget=0.25',
  'mpcache:tau=0.001',
]

export async function benchDecisionTime(lengths: number[]): Promise<void> {
  const ops = new Ops(await createBackend('wasm'))
  const gates = { hidden, kvHeads: model.kvHeads, layers: Array.from({ length: model.layers }, (_, l) => ({ weight: randn(model.kvHeads * hidden, 5 + l).map((x) => x * 0.05), bias: new Float32Array(model.kvHeads) })) }
  for (const n of lengths) {
    const cache = new PagedKVCache(ops.backend, { layers: model.layers, kvHeads: model.kvHeads, headDim: model.headDim })
    const hooks: LayerHooks[] = []
    const w = 256
    for (let l = 0; l < model.layers; l++) {
      fillRandomLayer(cache, l, n)
      hooks.push({
        layer: l,
        observationQueries: randn(model.qHeads * w * model.headDim, 17 + l),
        observationPositions: Int32Array.from({ length: w }, (_, i) => n - w + i),
        hiddenStates: randn(n * hidden, 29 + l),
      })
    }
    const ctx: PolicyContext = { cache, ops, model, hooks, promptLength: n, step: 0 }
    const bench = new Bench({ name: `policy decisions at ${n} tokens`, time: 0, iterations: 3, warmup: true, warmupIterations: 1 })
    const policies: [string, Policy][] = specs.map((s) => [s, createPolicy(s, model)!])
    policies.push(['trimkv:budget=0.25 (random gates)', createTrimKV({ gates, budget: 0.25 })])
    for (const [name, p] of policies) bench.add(name, () => void p.start().onPrefillEnd!(ctx))
    await bench.run()
    const ms = (name: string) => {
      const r = bench.tasks.find((t) => t.name === name)!.result
      return 'latency' in r ? r.latency.mean : NaN
    }
    const base = ms(specs[0])
    console.log(`\n${bench.name} (${ops.backend.name}), decision at prefill end`)
    console.log('| policy | ms | x snapkv |\n| --- | --- | --- |')
    for (const t of bench.tasks) console.log(`| ${t.name} | ${ms(t.name).toFixed(1)} | ${(ms(t.name) / base).toFixed(1)} |`)
    cache.dispose()
  }
}

export async function run(): Promise<void> {
  await benchDecisionTime([4096])
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2).map(Number).filter((x) => x > 0)
  await benchDecisionTime(args.length ? args : [4096])
}

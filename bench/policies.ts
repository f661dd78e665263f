/**
 * Compression time per token-eviction policy: the decision at prefill end (scoring, budgets, top-k) on a
 * fixture-shaped cache (8 layers, 6 query / 2 KV heads, head_dim 64) of 4k and 16k random tokens, at a
 * 25% budget. Applying the decision is the cache's work and is not timed here. Ratios are against
 * StreamingLLM (no scoring at all) measured in the same run.
 *   node dist/bench/policies.js [tokens...]
 */
import { Bench } from 'tinybench'
import { createBackend } from '../src/backend/index.js'
import { Ops } from '../src/backend/ops.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { createPolicy } from '../src/policies/registry.js'
import type { LayerHooks, ModelShape, PolicyContext } from '../src/policies/types.js'
import { fillRandomLayer, randn } from './random.js'

const model: ModelShape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3 }
const specs = ['streamingllm', 'knorm', 'h2o', 'tova', 'snapkv', 'snapkv:pooling=avg,kernel=5', 'pyramidkv', 'adakv',
  // kvkit's own method (README "UnionKV"): one model-wide selection plus per-layer top-up
  'unionkv']

export async function benchPolicies(lengths: number[]): Promise<void> {
  const ops = new Ops(await createBackend('wasm'))
  for (const n of lengths) {
    const cache = new PagedKVCache(ops.backend, { layers: model.layers, kvHeads: model.kvHeads, headDim: model.headDim })
    const hooks: LayerHooks[] = []
    const w = 32
    for (let l = 0; l < model.layers; l++) {
      fillRandomLayer(cache, l, n)
      hooks.push({
        layer: l,
        observationQueries: randn(model.qHeads * w * model.headDim, 17 + l),
        observationPositions: Int32Array.from({ length: w }, (_, i) => n - w + i),
        attentionMass: randn(model.kvHeads * n, 23 + l).map(Math.abs),
      })
    }
    const ctx: PolicyContext = { cache, ops, model, hooks, promptLength: n, step: 0 }
    const bench = new Bench({ name: `policies at ${n} tokens`, time: 0, iterations: n > 8192 ? 3 : 8, warmup: true, warmupIterations: 1 })
    for (const spec of specs) {
      const policy = createPolicy(`${spec}${spec.includes(':') ? ',' : ':'}budget=0.25`, model)!
      bench.add(spec, () => {
        policy.start().onPrefillEnd!(ctx)
      })
    }
    await bench.run()
    const base = bench.tasks.find((t) => t.name === 'streamingllm')!.result
    const baseMs = 'latency' in base ? base.latency.mean : NaN
    console.log(`\n${bench.name} (${ops.backend.name}${'build' in ops.backend ? ` ${String((ops.backend as { build?: string }).build)}` : ''}), decision at prefill end, 25% budget`)
    console.log('| policy | ms | x streamingllm |\n| --- | --- | --- |')
    for (const t of bench.tasks) {
      const r = t.result
      const ms = 'latency' in r ? r.latency.mean : NaN
      console.log(`| ${t.name} | ${ms.toFixed(1)} | ${(ms / baseMs).toFixed(1)} |`)
    }
    cache.dispose()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2).map(Number).filter((x) => x > 0)
  await benchPolicies(args.length ? args : [4096, 16384])
}

/**
 * Accuracy of kvpress's strongest presses as kvkit policies (LagKV, KVzip, KVzip+, CriticalKV,
 * CriticalAdaKV, Compactor) on a prompts file (`kvkit prompts`), in both loops:
 *   with:  kvpress's query-aware protocol, the whole prompt but its last token compressed
 *   after: the query-agnostic loop, the context compressed alone, the question prefilled on the
 *          compressed cache, then the answer decoded
 * Each sample is prefilled once (every query and the pre-RoPE keys captured); every (policy, loop)
 * starts from a copy of that cache, cut to the context for `after` (a causal prefill of the context
 * alone gives the same keys and values). KVzip's reconstruction scores do not depend on the budget,
 * and KVzip+ only weighs the same attention before the max, so one reconstruction per (sample, loop)
 * serves kvzip and kvzip:plus=true at every budget (KVzipShare). The numbers are those of
 * `generate({ policy, contextTokens })` (the parity and eval tests pin that path), in a fraction of the time.
 *   node dist/bench/peers-accuracy.js --prompts FILE [--first I] [--count K] [--question with,after] [--kv-dtype float32|float16] [--out rows.jsonl]
 * `--kv-dtype float16` holds every cache in float16, so "KV held" is a share of a float16 full cache (the
 * element type kvpress's presses run in); each policy's cache has the pages it asks for (needs.pageTokens).
 *   node dist/bench/peers-accuracy.js --table rows.jsonl[,more.jsonl]
 */
import { appendFileSync, readFileSync } from 'node:fs'
import { defaultModelDir } from '../src/eval/paths.js'
import { readPromptsFile } from '../src/eval/prompts-file.js'
import { rulerScore, strictCorrect } from '../src/eval/score.js'
import { HookCapture } from '../src/model/hooks.js'
import { loadModel } from '../src/node/load.js'
import { policyRuntime } from '../src/model/policy-runtime.js'
import { KVzipShare } from '../src/policies/kvzip-share.js'
import { createPolicy } from '../src/policies/registry.js'
import type { LayerHooks, PolicyContext } from '../src/policies/types.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import type { LlamaModel } from '../src/model/model.js'

/** a copy of the first `T` tokens of the prefilled cache (all of them by default) */
function copyCache(model: LlamaModel, base: PagedKVCache, pageTokens: number, T = base.length(0, 0)): PagedKVCache {
  const { layers, kvHeads, headDim: d } = model.config
  const cache = model.newCache('post-rope', pageTokens)
  for (let l = 0; l < layers; l++) {
    const { k, v } = base.readLayer(l)
    cache.append(l, k.subarray(0, T * kvHeads * d), v.subarray(0, T * kvHeads * d), base.positions(l, 0).subarray(0, T))
  }
  return cache
}

function argmax(x: Float32Array): number {
  let b = 0
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i
  return b
}

export interface PeerRow {
  policy: string
  task: string
  index: number
  question: 'with' | 'after'
  correct: boolean
  ruler: number
  text: string
  /** bytes held at the end (compressed prompt, question in the after loop, decoded tokens) */
  kvBytes: number
  kvBytesFull: number
  compressMs: number
}

export const PEER_SPECS = ['lagkv', 'kvzip', 'kvzip:plus=true', 'criticalkv', 'criticaladakv', 'compactor']
  .flatMap((p) => [0.5, 0.25, 0.125].map((b) => `${p}${p.includes(':') ? ',' : ':'}budget=${b}`))

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

/** the hooks of the first c tokens, from hooks captured over more */
function cut(hooks: LayerHooks[], c: number, qHeads: number, kvHeads: number, d: number): LayerHooks[] {
  return hooks.map((h) => {
    const w = h.observationPositions!.length
    const q = new Float32Array(qHeads * c * d)
    for (let g = 0; g < qHeads; g++) q.set(h.observationQueries!.subarray(g * w * d, (g * w + c) * d), g * c * d)
    const hidden = h.hiddenStates && h.hiddenStates.subarray(0, (h.hiddenStates.length / w) * c).slice()
    return { layer: h.layer, observationQueries: q, observationPositions: h.observationPositions!.slice(0, c), preRopeKeys: h.preRopeKeys!.slice(0, c * kvHeads * d), ...(hidden && { hiddenStates: hidden }) }
  })
}

async function main(): Promise<void> {
  const table = arg('table', '')
  if (table) return printPeerTable(table.split(',').flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as PeerRow)))
  const kvDtype = arg('kv-dtype', 'float32')
  if (kvDtype !== 'float32' && kvDtype !== 'float16') throw new Error(`--kv-dtype takes float32 or float16, got ${kvDtype}`)
  const model = await loadModel(defaultModelDir(), { backend: 'wasm', kvDtype })
  const cfg = model.config
  const { layers, qHeads, kvHeads, headDim: d } = cfg
  const first = Number(arg('first', '0'))
  const count = Number(arg('count', '24'))
  const out = arg('out', '')
  const specs = arg('policies', ['full', ...PEER_SPECS].join(';')).split(';').filter(Boolean)
  const samples = readPromptsFile(arg('prompts', 'prompts.jsonl'), cfg.vocab).filter((s) => s.index >= first && s.index < first + count)
  samples.sort((a, b) => a.index - b.index)
  const loops = arg('question', 'with,after').split(',') as ('with' | 'after')[]
  if (!loops.length || loops.some((q) => q !== 'with' && q !== 'after')) throw new Error(`--question takes with, after or with,after, got ${arg('question', '')}`)
  const needsHidden = specs.some((spec) => createPolicy(spec, cfg)?.needs?.hiddenStates === true)
  const eos = new Set(cfg.eosTokenIds)
  const logits = new Float32Array(cfg.vocab)
  for (const s of samples) {
    const ids = s.prompt_ids
    const n = ids.length
    // hidden states too when a policy reads them (UnionKV with TRIM-KV's retention gates)
    const capture = new HookCapture({ observationWindow: Number.MAX_SAFE_INTEGER, preRopeKeys: true, hiddenStates: needsHidden }, cfg, model.backend.heap, n - 1)
    const base = model.newCache()
    const t0 = performance.now()
    model.prefill(ids.slice(0, n - 1), base, 0, capture)
    capture.finishPrefill()
    const prefillMs = performance.now() - t0
    const hooksFor = { with: capture.hooks, after: cut(capture.hooks, s.context_len, qHeads, kvHeads, d) }
    for (const question of loops) {
      const c = question === 'with' ? n - 1 : s.context_len
      // every kvzip spec of the loop (its budgets, plain and plus) from one reconstruction
      const kvzip = new KVzipShare()
      const policies = specs.map((spec) => kvzip.policy(spec, cfg))
      for (const [i, spec] of specs.entries()) {
        if (spec === 'full' && question === 'after') continue
        const policy = policies[i]
        await policy?.prepare?.(model)
        const cache = copyCache(model, base, policy?.needs?.pageTokens ?? 64)
        if (c < n - 1) cache.apply({ heads: Array.from({ length: layers * kvHeads }, (_, i) => ({ layer: Math.floor(i / kvHeads), head: i % kvHeads, keep: Int32Array.from({ length: c }, (_, j) => j) })) })
        const ctx: PolicyContext = { cache, ops: model.ops, model: cfg, hooks: hooksFor[question], promptLength: c + 1, step: 0, promptAfter: n - 1 - c }
        ctx.runtime = policyRuntime(model, cache, ids.slice(0, c), () => ctx)
        const c0 = performance.now()
        const session = policy?.start()
        const dec = session?.onPrefillEndAsync ? await session.onPrefillEndAsync(ctx) : session?.onPrefillEnd?.(ctx)
        if (dec) cache.apply(dec)
        const compressMs = performance.now() - c0
        if (c < n - 1) model.prefill(ids.slice(c, n - 1), cache, c)
        const outIds: number[] = []
        let token = ids[n - 1]
        for (let step = 0, pos = n - 1; step < s.answer_ids.length + 3; step++, pos++) {
          model.forward.step([token], Int32Array.of(pos), cache, { decode: true, first: pos, logits: 'last', out: logits })
          token = argmax(logits)
          if (eos.has(token)) break
          outIds.push(token)
        }
        const text = model.tokenizer.decode(outIds)
        const row: PeerRow = {
          policy: spec, task: s.task, index: s.index, question, correct: strictCorrect(text, s.answer), ruler: rulerScore(text, s.expected), text,
          kvBytes: cache.bytes().total, kvBytesFull: cache.bytesPerToken * (n - 1 + outIds.length), compressMs,
        }
        if (out) appendFileSync(out, JSON.stringify(row) + '\n')
        cache.dispose()
      }
    }
    capture.dispose()
    base.dispose()
    process.stderr.write(`${s.task} #${s.index}: prefill ${(prefillMs / 1000).toFixed(1)} s\n`)
  }
  model.dispose()
}

/** the first row of each (policy, loop, task, sample): files from reruns that overlap count a sample once */
function firstOfEach(rows: PeerRow[]): PeerRow[] {
  const seen = new Set<string>()
  return rows.filter((r) => {
    const k = `${r.policy}\u0000${r.question}\u0000${r.task}\u0000${r.index}`
    return seen.has(k) ? false : (seen.add(k), true)
  })
}

/**
 * One row per (policy, loop): accuracy per task, mean, share of the full cache's mean on the same samples,
 * bytes held, samples. A sample read twice (overlapping files) counts once.
 */
export function printPeerTable(all: PeerRow[]): void {
  const rows = firstOfEach(all)
  const tasks = [...new Set(rows.map((r) => r.task))]
  const acc = (xs: PeerRow[], t: string) => {
    const r = xs.filter((x) => x.task === t)
    return r.filter((x) => x.correct).length / Math.max(1, r.length)
  }
  const fullCorrect = new Map(rows.filter((r) => r.policy === 'full' && r.question === 'with').map((r) => [`${r.task}\u0000${r.index}`, r.correct]))
  // the full cache's accuracy on exactly the samples a row has (a partial run compares like with like)
  const fullAcc = (xs: PeerRow[], t: string) => {
    const r = xs.filter((x) => x.task === t)
    return r.filter((x) => fullCorrect.get(`${x.task}\u0000${x.index}`)).length / Math.max(1, r.length)
  }
  console.log(`| policy | loop | KV held | ${tasks.join(' | ')} | mean | of full | samples (${tasks.join(' / ')}) |`)
  console.log(`| --- | --- | --- | ${tasks.map(() => '---').join(' | ')} | --- | --- | --- |`)
  // by method, then budget (largest first), then loop
  const budgetOf = (p: string) => Number(/budget=([\d.]+)/.exec(p)?.[1] ?? 1)
  const keys = [...new Set(rows.map((r) => `${r.policy}\u0000${r.question}`))].sort((a, b) => {
    const [pa, qa] = a.split('\u0000')
    const [pb, qb] = b.split('\u0000')
    const ma = pa.replace(/,?budget=[\d.]+/, '')
    const mb = pb.replace(/,?budget=[\d.]+/, '')
    return (pa === 'full' ? -1 : 0) - (pb === 'full' ? -1 : 0) || ma.localeCompare(mb) || budgetOf(pb) - budgetOf(pa) || qb.localeCompare(qa)
  })
  for (const k of keys) {
    const [policy, question] = k.split('\u0000')
    const r = rows.filter((x) => x.policy === policy && x.question === question)
    const mean = tasks.reduce((a, t) => a + acc(r, t), 0) / tasks.length
    const fullMean = tasks.reduce((a, t) => a + fullAcc(r, t), 0) / tasks.length
    const held = r.reduce((a, x) => a + x.kvBytes / x.kvBytesFull, 0) / r.length
    const per = tasks.map((t) => r.filter((x) => x.task === t).length).join(' / ')
    console.log(`| \`${policy}\` | ${question === 'with' ? 'question in prompt' : 'question after'} | ${(held * 100).toFixed(1)}% | ${tasks.map((t) => acc(r, t).toFixed(2)).join(' | ')} | ${mean.toFixed(2)} | ${((mean / fullMean) * 100).toFixed(0)}% | ${per} |`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

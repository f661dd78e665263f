// CacheBlend on RULER-style prompts of the fixture: the context cut into six chunks (~650 tokens each at
// 4096), each cached on its own, then the question. Per sample: the full prefill's answer,
// Graph-KV's (the chunks as sources sharing one position range after the BOS), and, per chunk encoding
// (--prefix: each chunk alone, or after the BOS as CacheBlend's example script encodes it),
// CacheBlend's at each --ratios share (deviation at --check-layer, --deviation key or kv), a random 15%
// choice (the ablation), with --gradual F the 5/15/30% rows again under gradual filtering (F x ratio
// kept at the check layer, shrinking to the ratio), and an oracle: nothing chosen, but the task's needle
// tokens outside the first chunk recomputed in every layer (what no deviation rule is told); with --cross,
// the 'cross-chunk' selection (tokens chosen by their attention over earlier chunks) at --cross-layers. Strict
// accuracy per task; time to first token of each against the full prefill's (medians, one process,
// chunks already in the store: memory, or Redis with --redis URL).
//   npm run build && node dist/bench/cacheblend.js [--tasks passkey,niah_single,vt] [--samples 2]
//     [--length 4096] [--chunks 6] [--workers 1] [--out rows.jsonl] [--redis redis://127.0.0.1:6379]
//     [--prefix none,bos] [--ratios 0,0.05,0.15,0.3,1] [--check-layer 1] [--deviation key] [--gradual 2]
//     [--graph 1] [--cross 0.15 --cross-layers 1,2,3] [--first 0]
import { fileURLToPath } from 'node:url'
import { promptSample } from '../src/eval/prompts-file.js'
import { strictCorrect } from '../src/eval/score.js'
import type { TaskName } from '../src/eval/tasks.js'
import { CacheBlend, type CacheBlendOptions } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore, type ChunkStore } from '../src/reuse/chunk-kv.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { RedisChunkStore } from '../src/node/redis-chunk-store.js'
import { accuracyCells, answer, arg, fixture, median, needleSlots, runShards, split } from './reuse-common.js'

const TASKS = arg('tasks', 'passkey,niah_single,vt').split(',') as TaskName[]
const SAMPLES = Number(arg('samples', '2'))
// --first K: the samples K..K+samples-1 (a later run adds samples to an earlier one's)
const FIRST = Number(arg('first', '0'))
const LENGTH = Number(arg('length', '4096'))
const CHUNKS = Number(arg('chunks', '6'))
const WORKERS = Number(arg('workers', '1'))
const OUT = arg('out', '')
const RATIOS = arg('ratios', '0,0.05,0.15,0.3,1').split(',').map(Number)
const PREFIXES = arg('prefix', 'none').split(',') as ('none' | 'bos')[]
const GRADUAL = Number(arg('gradual', '0'))
const GRAPH = arg('graph', '1') !== '0'
// --cross 0.15 --cross-layers 2,3: CacheBlend's 'cross-chunk' selection at those shares and check layers
const CROSS = arg('cross', '').split(',').filter(Boolean).map(Number)
const CROSS_LAYERS = arg('cross-layers', arg('check-layer', '1')).split(',').map(Number)
const BASE: CacheBlendOptions = { checkLayer: Number(arg('check-layer', '1')), deviation: arg('deviation', 'key') as 'key' | 'kv' }

interface Variant { name: string; options: CacheBlendOptions; oracle?: boolean }
const pct = (r: number) => `${+(r * 100).toFixed(1)}%`
const VARIANTS: Variant[] = PREFIXES.flatMap((p) => {
  const tag = PREFIXES.length > 1 ? `${p} ` : ''
  const o = { ...BASE, chunkPrefix: p }
  return [
    ...RATIOS.map((r) => ({ name: `${tag}${pct(r)}`, options: { ...o, ratio: r } })),
    // the cross-chunk choice reads no deviation (CacheBlend refuses one)
    ...CROSS.flatMap((r) => CROSS_LAYERS.map((c) => ({ name: `${tag}cross ${pct(r)} L${c}`, options: { chunkPrefix: p, ratio: r, checkLayer: c, selection: 'cross-chunk' as const } }))),
    // the random choice measures no deviation (CacheBlend refuses one)
    { name: `${tag}random 15%`, options: { chunkPrefix: p, checkLayer: BASE.checkLayer, ratio: 0.15, selection: 'random' as const } },
    ...(GRADUAL > 1 ? [0.05, 0.15, 0.3].map((r) => ({ name: `${tag}${pct(r)} grad x${GRADUAL}`, options: { ...o, ratio: r, gradualFrom: Math.min(1, GRADUAL * r) } })) : []),
    { name: `${tag}oracle`, options: { ...o, ratio: 0 }, oracle: true },
  ]
})

interface Row { task: string; index: number; variant: string; correct: boolean; text: string; ttftMs: number; recomputed: number }

async function runShard(k: number, n: number, store: ChunkStore, emit: (r: Row) => void): Promise<void> {
  const { model, builder } = await fixture()
  const jobs = TASKS.flatMap((task) => Array.from({ length: SAMPLES }, (_, i) => ({ task, index: FIRST + i }))).filter((_, j) => j % n === k)
  for (const { task, index } of jobs) {
    const t = builder.build(task, LENGTH, 0, index)
    const s = promptSample(t)
    const { chunks } = split(s, CHUNKS)
    const needles = needleSlots(t, chunks[0].length)
    const maxNew = s.answer_ids.length + 3
    // the chunks enter the store first (a warm store is what CacheBlend reuses)
    for (const chunkPrefix of PREFIXES) await new CacheBlend(model, { store, chunkPrefix }).prepare(chunks).then((c) => c.dispose())
    const full = await answer(model, s.prompt_ids, maxNew)
    emit({ task, index, variant: 'full prefill', correct: strictCorrect(full.text, s.answer), text: full.text, ttftMs: full.ttftMs, recomputed: s.context_len })
    for (const v of VARIANTS) {
      // a seed for the random choice only (the cross-chunk choice refuses one it would not read)
      const blend = new CacheBlend(model, { ...v.options, ...(v.options.selection === 'random' ? { seed: index } : {}), store })
      let recomputed = 0
      const r = await answer(model, s.prompt_ids, maxNew, {}, async () => {
        const ctx = await blend.prepare(chunks, { always: v.oracle ? needles : [] })
        // rows recomputed over the layers after the check layer, as whole-context rows (gradual filtering's mean)
        const after = ctx.report.perLayer.slice(blend.checkLayer + 1)
        recomputed = after.length ? Math.round(after.reduce((a, b) => a + b, 0) / after.length) : 0
        return { reuse: ctx }
      })
      emit({ task, index, variant: v.name, correct: strictCorrect(r.text, s.answer), text: r.text, ttftMs: r.ttftMs, recomputed })
    }
    // Graph-KV against sequential encoding: the BOS as the prefix, the chunks as sources sharing positions
    if (!GRAPH) continue
    const g = await answer(model, s.prompt_ids, maxNew, {}, async () => {
      const [c0, ...rest] = chunks
      return { reuse: await graphKV(model, { prefix: c0.slice(0, 1), sources: [c0.slice(1), ...rest] }) }
    })
    emit({ task, index, variant: 'graph-kv', correct: strictCorrect(g.text, s.answer), text: g.text, ttftMs: g.ttftMs, recomputed: 0 })
  }
  model.dispose()
}

function table(rows: Row[]): void {
  const variants = ['full prefill', ...VARIANTS.map((v) => v.name), ...(GRAPH ? ['graph-kv'] : [])]
  const fullTtft = median(rows.filter((r) => r.variant === 'full prefill').map((r) => r.ttftMs))
  console.log(`CacheBlend, fixture-14m, ${LENGTH} tokens, ${CHUNKS} chunks + question, ${SAMPLES} samples a task, check layer ${BASE.checkLayer}, ${BASE.deviation} deviation; strict accuracy; TTFT median and full/this ratio; rows: mean recomputed after the check layer`)
  console.log(['variant'.padEnd(22), ...TASKS.map((t) => t.padStart(12)), 'TTFT ms'.padStart(10), 'speedup'.padStart(9), 'rows'.padStart(7)].join(' '))
  for (const v of variants) {
    const mine = rows.filter((r) => r.variant === v)
    const acc = accuracyCells(mine, TASKS)
    const ttft = median(mine.map((r) => r.ttftMs))
    console.log([v.padEnd(22), ...acc, ttft.toFixed(0).padStart(10), `${(fullTtft / ttft).toFixed(2)}x`.padStart(9), median(mine.map((r) => r.recomputed)).toFixed(0).padStart(7)].join(' '))
  }
}

async function main(): Promise<void> {
  // --redis URL: the chunks live in Redis/Valkey (each CacheBlend loads them from there)
  const redis = arg('redis', '')
  const store: ChunkStore = redis ? await RedisChunkStore.connect(redis) : new MemoryChunkStore()
  const rows = await runShards<Row>(fileURLToPath(import.meta.url), WORKERS, OUT, (k, n, emit) => runShard(k, n, store, emit))
  if (rows) table(rows)
  if (store instanceof RedisChunkStore) await store.close()
}

await main()

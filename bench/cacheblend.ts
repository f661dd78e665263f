// CacheBlend on RULER-style prompts of the fixture: the context cut into six chunks (~650 tokens each at
// 4096), each cached on its own, then the question. Per sample: the full prefill's answer,
// Graph-KV's (the chunks as sources sharing one position range after the BOS), and
// CacheBlend's at 0/5/15/30/100% recomputed (check layer 1) plus a random 15% choice (the ablation),
// strict accuracy per task; time to first token of each against the full prefill's (medians, one
// process, chunks already in the store: memory, or Redis with --redis URL).
//   npm run build && node dist/bench/cacheblend.js [--tasks passkey,niah_single,vt] [--samples 2]
//     [--length 4096] [--chunks 6] [--workers 1] [--out rows.jsonl] [--redis redis://127.0.0.1:6379]
import { fileURLToPath } from 'node:url'
import { promptSample, type PromptSample } from '../src/eval/prompts-file.js'
import { strictCorrect } from '../src/eval/score.js'
import type { TaskName } from '../src/eval/tasks.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore, type ChunkStore } from '../src/reuse/chunk-kv.js'
import { graphKV } from '../src/reuse/graph-kv.js'
import { RedisChunkStore } from '../src/node/redis-chunk-store.js'
import { accuracyCells, answer, arg, fixture, median, runShards } from './reuse-common.js'

const TASKS = arg('tasks', 'passkey,niah_single,vt').split(',') as TaskName[]
const SAMPLES = Number(arg('samples', '2'))
const LENGTH = Number(arg('length', '4096'))
const CHUNKS = Number(arg('chunks', '6'))
const WORKERS = Number(arg('workers', '1'))
const OUT = arg('out', '')
const RATIOS = [0, 0.05, 0.15, 0.3, 1]
const VARIANTS = [...RATIOS.map((r) => ({ name: `${r * 100}%`, ratio: r, selection: 'deviation' as const })), { name: 'random 15%', ratio: 0.15, selection: 'random' as const }]

interface Row { task: string; index: number; variant: string; correct: boolean; text: string; ttftMs: number; recomputed: number }

/** the context cut into `k` chunks of near-equal token counts, and the question block */
function split(s: PromptSample, k: number): { chunks: number[][]; question: number[] } {
  const ctx = s.prompt_ids.slice(0, s.context_len)
  const chunks = Array.from({ length: k }, (_, i) => ctx.slice(Math.floor((i * ctx.length) / k), Math.floor(((i + 1) * ctx.length) / k)))
  return { chunks, question: s.prompt_ids.slice(s.context_len) }
}

async function runShard(k: number, n: number, store: ChunkStore, emit: (r: Row) => void): Promise<void> {
  const { model, builder } = await fixture()
  const jobs = TASKS.flatMap((task) => Array.from({ length: SAMPLES }, (_, index) => ({ task, index }))).filter((_, j) => j % n === k)
  for (const { task, index } of jobs) {
    const s = promptSample(builder.build(task, LENGTH, 0, index))
    const { chunks } = split(s, CHUNKS)
    const maxNew = s.answer_ids.length + 3
    // the chunks enter the store first (a warm store is what CacheBlend reuses)
    await new CacheBlend(model, { store }).prepare(chunks).then((c) => c.dispose())
    const full = await answer(model, s.prompt_ids, maxNew)
    emit({ task, index, variant: 'full prefill', correct: strictCorrect(full.text, s.answer), text: full.text, ttftMs: full.ttftMs, recomputed: s.context_len })
    for (const v of VARIANTS) {
      const blend = new CacheBlend(model, { ratio: v.ratio, selection: v.selection, seed: index, store })
      let recomputed = 0
      const r = await answer(model, s.prompt_ids, maxNew, {}, async () => {
        const ctx = await blend.prepare(chunks)
        recomputed = ctx.report.recomputed.length
        return { reuse: ctx }
      })
      emit({ task, index, variant: v.name, correct: strictCorrect(r.text, s.answer), text: r.text, ttftMs: r.ttftMs, recomputed })
    }
    // Graph-KV against sequential encoding: the BOS as the prefix, the chunks as sources sharing positions
    const g = await answer(model, s.prompt_ids, maxNew, {}, async () => {
      const [c0, ...rest] = chunks
      return { reuse: graphKV(model, { prefix: c0.slice(0, 1), sources: [c0.slice(1), ...rest] }) }
    })
    emit({ task, index, variant: 'graph-kv', correct: strictCorrect(g.text, s.answer), text: g.text, ttftMs: g.ttftMs, recomputed: 0 })
  }
  model.dispose()
}

function table(rows: Row[]): void {
  const variants = ['full prefill', ...VARIANTS.map((v) => v.name), 'graph-kv']
  const fullTtft = median(rows.filter((r) => r.variant === 'full prefill').map((r) => r.ttftMs))
  console.log(`CacheBlend, fixture-14m, ${LENGTH} tokens, ${CHUNKS} chunks + question, ${SAMPLES} samples a task; strict accuracy; TTFT median and full/this ratio`)
  console.log(['variant'.padEnd(14), ...TASKS.map((t) => t.padStart(12)), 'TTFT ms'.padStart(10), 'speedup'.padStart(9)].join(' '))
  for (const v of variants) {
    const mine = rows.filter((r) => r.variant === v)
    const acc = accuracyCells(mine, TASKS)
    const ttft = median(mine.map((r) => r.ttftMs))
    console.log([v.padEnd(14), ...acc, ttft.toFixed(0).padStart(10), `${(fullTtft / ttft).toFixed(2)}x`.padStart(9)].join(' '))
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

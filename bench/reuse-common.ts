// What the reuse benchmarks (cacheblend.ts, kvshare.ts) share: flags, the fixture and its prompt
// builder, time to first token of one generation, and sharding the samples over worker processes.
import { fork } from 'node:child_process'
import { appendFileSync } from 'node:fs'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PromptSample } from '../src/eval/prompts-file.js'
import type { TaskSample } from '../src/eval/prompt.js'
import type { GenerateOptions } from '../src/model/types.js'
import { loadModel } from '../src/node/load.js'

/** the value after `--name`, or `def` */
export const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** the fixture model on wasm and a RULER prompt builder over its books */
export async function fixture(): Promise<{ model: LlamaModel; builder: PromptBuilder }> {
  const model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
  const builder = new PromptBuilder({
    tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? 0, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()),
  })
  return { model, builder }
}

/** the answer and ms from the start of `before` (the reuse's preparation) to the first streamed token */
export async function answer(model: LlamaModel, ids: number[], maxNew: number, o: GenerateOptions = {}, before: () => Promise<GenerateOptions> = async () => ({})): Promise<{ text: string; ttftMs: number }> {
  const t0 = performance.now()
  const g = model.generate(ids, { maxNewTokens: maxNew, ...o, ...(await before()) })
  let ttft = -1
  for await (const _ of g) {
    if (ttft < 0) ttft = performance.now() - t0
  }
  const r = await g.result
  return { text: r.text, ttftMs: ttft < 0 ? performance.now() - t0 : ttft }
}

/**
 * Runs `shard(k, n, emit)` for k < `workers` in forked copies of this script (`--shard k/n`; rows come
 * back as messages), or in this process for one worker; every row is kept and, with `out`, appended to
 * that file as a JSON line. Returns the rows, or null in a forked worker (its parent reports).
 */
export async function runShards<R>(script: string, workers: number, out: string, shard: (k: number, n: number, emit: (r: R) => void) => Promise<void>): Promise<R[] | null> {
  const rows: R[] = []
  const emit = (r: R) => {
    rows.push(r)
    if (out) appendFileSync(out, JSON.stringify(r) + '\n')
  }
  const mine = arg('shard', '')
  if (mine) {
    const [k, n] = mine.split('/').map(Number)
    await shard(k, n, (r) => process.send!(r))
    return null
  }
  if (workers > 1) {
    await Promise.all(Array.from({ length: workers }, (_, k) => new Promise<void>((resolve, reject) => {
      const child = fork(script, [...process.argv.slice(2), '--shard', `${k}/${workers}`])
      child.on('message', (m) => emit(m as R))
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${k} exited with ${code}`))))
    })))
  } else await shard(0, 1, emit)
  return rows
}

/** per task, "correct/count" of the rows, right-aligned in 12 columns (a table's accuracy cells) */
export function accuracyCells(rows: readonly { task: string; correct: boolean }[], tasks: readonly string[]): string[] {
  return tasks.map((t) => {
    const x = rows.filter((r) => r.task === t)
    return `${x.filter((r) => r.correct).length}/${x.length}`.padStart(12)
  })
}

/** the context cut into `k` chunks of near-equal token counts, and the question block */
export function split(s: PromptSample, k: number): { chunks: number[][]; question: number[] } {
  const ctx = s.prompt_ids.slice(0, s.context_len)
  const chunks = Array.from({ length: k }, (_, i) => ctx.slice(Math.floor((i * ctx.length) / k), Math.floor(((i + 1) * ctx.length) / k)))
  return { chunks, question: s.prompt_ids.slice(s.context_len) }
}

/** the context slots of the sample's needles outside the first chunk (the oracle's recompute) */
export function needleSlots(t: TaskSample, firstChunk: number): number[] {
  const slots: number[] = []
  let at = 0
  for (const p of t.pieces) {
    if (p.kind === 'needle') for (let j = 0; j < p.ids.length; j++) if (at + j >= firstChunk) slots.push(at + j)
    at += p.ids.length
  }
  return slots
}

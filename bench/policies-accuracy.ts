/**
 * Policy accuracy on the fixture's retrieval tasks, through `evaluate()` (the eval's own loop: each
 * sample prefilled once and shared by every policy), in one or both loops:
 *   before (kvpress's query-aware protocol): the whole prompt but its last token compressed
 *   after  (query-agnostic): the context compressed alone, the question prefilled on the compressed
 *          cache, then the answer decoded, as a compressed document is reused for many questions
 *   node dist/bench/policies-accuracy.js --samples 8 --tasks passkey,niah_single,vt --length 4096 \
 *     --policies 'full;unionkv:budget=0.25;...' [--question before,after] [--books A,B] [--first I]
 *     [--workers N] [--out rows.jsonl]
 *   node dist/bench/policies-accuracy.js --from a.jsonl,b.jsonl     (the table of earlier runs, merged)
 * --books takes the haystack from other books (files or folders) than the eval's: tune on some, confirm
 * on others. --out appends one JSON line per outcome as it arrives, so a run cut short keeps its rows.
 */
import { appendFileSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { evaluate } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { wilsonInterval, type SampleOutcome } from '../src/eval/results.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

const MODES = { before: 'with', after: 'after' } as const

async function main(): Promise<void> {
  const from = arg('from', '')
  if (from) {
    const rows = from.split(',').flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as SampleOutcome))
    console.log(accuracyTable(rows))
    return
  }
  const modes = arg('question', 'before').split(',').map((m) => {
    if (!(m in MODES)) throw new Error(`--question takes before, after or both (before,after), got ${m}`)
    return MODES[m as keyof typeof MODES]
  })
  const books = arg('books', '') ? arg('books', '').split(',').map((b) => resolve(b)) : undefined
  const out = arg('out', '')
  const rows: SampleOutcome[] = []
  for (const question of modes) {
    await evaluate({
      model: defaultModelDir(),
      policies: arg('policies', 'full;snapkv:budget=0.25').split(';').map((s) => s.trim()).filter(Boolean),
      tasks: arg('tasks', 'passkey,niah_single,vt').split(','),
      lengths: [Number(arg('length', '4096'))],
      samples: Number(arg('samples', '8')),
      firstSample: Number(arg('first', '0')),
      seed: Number(arg('seed', '1')),
      workers: arg('workers', '') ? Number(arg('workers', '')) : undefined,
      backend: 'wasm',
      books,
      question,
      onOutcome(o) {
        rows.push(o)
        if (out) appendFileSync(out, JSON.stringify(o) + '\n')
      },
      onProgress: (p) => process.stderr.write(`[${question} ${p.done}/${p.total}] ${p.last.policy} ${p.last.task} #${p.last.index}: ${p.last.correct ? 1 : 0}\n`),
    })
  }
  console.log(`kernels: ${[...new Set(rows.map((r) => r.kernels))].join(', ')}`)
  console.log(accuracyTable(rows))
}

const pct = (x: number) => `${(x * 100).toFixed(0)}%`

/**
 * One row per (policy, loop): accuracy per task with its 95% Wilson interval, the mean over tasks, that
 * mean against the full cache's in the same loop ("of full"), and the KV bytes held at the end of
 * generation against a full cache's.
 */
export function accuracyTable(rows: readonly SampleOutcome[]): string {
  const tasks = [...new Set(rows.map((r) => r.task))]
  const keys = [...new Set(rows.map((r) => `${r.question}\u0000${r.policy}`))]
  const cell = (q: string, p: string, t: string) => rows.filter((r) => r.question === q && r.policy === p && r.task === t)
  const acc = (q: string, p: string, t: string) => {
    const xs = cell(q, p, t)
    return xs.filter((x) => x.correct).length / Math.max(1, xs.length)
  }
  const mean = (q: string, p: string) => tasks.reduce((a, t) => a + acc(q, p, t), 0) / tasks.length
  const lines = [
    `| policy | loop | KV held | ${tasks.join(' | ')} | mean | of full | samples |`,
    `| --- | --- | --- | ${tasks.map(() => '---').join(' | ')} | --- | --- | --- |`,
  ]
  for (const key of keys) {
    const [q, p] = key.split('\u0000')
    const xs = rows.filter((r) => r.question === q && r.policy === p)
    const held = xs.reduce((a, x) => a + x.kvBytes / x.kvBytesFull, 0) / xs.length
    const perTask = tasks.map((t) => {
      const c = cell(q, p, t)
      const [lo, hi] = wilsonInterval(c.filter((x) => x.correct).length, c.length)
      return `${acc(q, p, t).toFixed(2)} [${lo.toFixed(2)}, ${hi.toFixed(2)}]`
    })
    const full = keys.includes(`${q}\u0000full`) ? mean(q, 'full') : NaN
    const loop = q === 'after' ? 'question after' : 'question in prompt'
    lines.push(`| \`${p}\` | ${loop} | ${pct(held)} | ${perTask.join(' | ')} | ${mean(q, p).toFixed(2)} | ${pct(mean(q, p) / full)} | ${tasks.map((t) => cell(q, p, t).length).join(' / ')} |`)
  }
  return lines.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

// KVShare on edited request pairs of the fixture: a RULER-style prompt (passkey, niah_single) is the
// cached request; its pair is the same prompt with `--edits` haystack sentences replaced by sentences of
// another haystack (the needles and the question intact). Per pair, in one process and interleaved: the
// full prefill of the edited prompt, and KVShare (the original's context cached, the edited context
// aligned to it, `--ratios` of the tokens after the first edit recomputed, the question prefilled) at
// each ratio. Reports strict accuracy per task and time to first token (KVShare's includes its
// alignment, placement and recompute) against the full prefill's: ratio of medians and median of the
// per-pair ratios. `--refresh off,on`: each ratio without and with the decode-time recompute (the
// variant "+decode", at `--threshold`, `--refresh-tokens`, `--max-refreshes`); its refreshes at the first
// step count in its time to first token.
//   npm run build && node dist/bench/kvshare.js [--pairs 100] [--tasks passkey,niah_single]
//     [--length 2048] [--edits 1] [--ratios 0.15] [--refresh off,on] [--threshold 0.5]
//     [--refresh-tokens 16] [--max-refreshes 4] [--workers 1] [--out rows.jsonl] [--from rows.jsonl]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { PromptBuilder, PromptPiece } from '../src/eval/prompt.js'
import { strictCorrect } from '../src/eval/score.js'
import type { TaskName } from '../src/eval/tasks.js'
import { seededRandom } from '../src/model/sampling.js'
import { KVShare } from '../src/reuse/kvshare.js'
import type { DecodeRefreshReport } from '../src/reuse/decode-refresh.js'
import { accuracyCells, answer, arg, fixture, median, runShards } from './reuse-common.js'

const PAIRS = Number(arg('pairs', '100'))
const TASKS = arg('tasks', 'passkey,niah_single').split(',') as TaskName[]
const LENGTH = Number(arg('length', '2048'))
const EDITS = Number(arg('edits', '1'))
const RATIOS = arg('ratios', '0.15').split(',').map(Number)
const REFRESH = arg('refresh', 'off,on').split(',')
const DECODE = { threshold: Number(arg('threshold', '0.5')), tokens: Number(arg('refresh-tokens', '16')), maxRefreshes: Number(arg('max-refreshes', '4')) }
if (REFRESH.some((r) => r !== 'off' && r !== 'on')) throw new Error(`--refresh takes off, on or off,on; got ${REFRESH.join(',')}`)
/** the KVShare variants: per ratio, without and with the decode-time recompute */
const VARIANTS = RATIOS.flatMap((ratio) => REFRESH.map((r) => ({ ratio, refresh: r === 'on', name: `KVShare ${ratio * 100}%${r === 'on' ? ' +decode' : ''}` })))
const WORKERS = Number(arg('workers', '1'))
const OUT = arg('out', '')

interface Row {
  pair: number; task: string; index: number; variant: string; correct: boolean; text: string; ttftMs: number
  /** KVShare's report: context tokens, edited, exact prefix, recomputed after the check layer */
  context: number; edited: number; exact: number; recomputed: number
  /** decode-time refreshes run (0 without) */
  refreshes?: number
}

/** the pair: the original sample, and its context and question with EDITS haystack sentences replaced */
function editedPair(builder: PromptBuilder, task: TaskName, index: number) {
  const s = builder.build(task, LENGTH, 0, index)
  const donor = builder.build(task, LENGTH, 1, index).pieces.filter((p) => p.kind === 'sentence')
  const rand = seededRandom(index * 7919 + TASKS.indexOf(task))
  const pieces: PromptPiece[] = s.pieces.slice()
  const sentences = pieces.flatMap((p, i) => (p.kind === 'sentence' ? [i] : []))
  for (let e = 0; e < EDITS; e++) {
    const at = sentences[Math.floor(rand() * sentences.length)]
    let by = donor[Math.floor(rand() * donor.length)]
    while (by.ids.join() === pieces[at].ids.join()) by = donor[Math.floor(rand() * donor.length)]
    pieces[at] = by
  }
  const ctx = (ps: PromptPiece[]) => ps.slice(0, -1).flatMap((p) => p.ids)
  return { original: ctx(s.pieces), edited: ctx(pieces), question: pieces[pieces.length - 1].ids, answer: s.answer, maxNew: s.answerIds.length + 3 }
}

async function runShard(k: number, n: number, emit: (r: Row) => void): Promise<void> {
  const { model, builder } = await fixture()
  // one untimed generation first, so the first pair's timings do not include warming up
  await model.generate([0, 5, 6, 7], { maxNewTokens: 2 }).result
  for (let pair = k; pair < PAIRS; pair += n) {
    const task = TASKS[pair % TASKS.length]
    const index = Math.floor(pair / TASKS.length)
    const p = editedPair(builder, task, index)
    const prompt = [...p.edited, ...p.question]
    const base = { pair, task, index, context: p.edited.length }
    const full = await answer(model, prompt, p.maxNew)
    emit({ ...base, variant: 'full prefill', correct: strictCorrect(full.text, p.answer), text: full.text, ttftMs: full.ttftMs, edited: p.edited.length, exact: 0, recomputed: p.edited.length })
    for (const { ratio, refresh, name } of VARIANTS) {
      const share = new KVShare(model, { ratio, decodeRefresh: refresh ? DECODE : false })
      // the cached request, untimed: what an earlier request left
      await share.add(p.original)
      let report = { edited: 0, exact: 0, recomputed: 0 }
      // filled in while the generation runs (read after it)
      const seen: { decode: DecodeRefreshReport | null } = { decode: null }
      const r = await answer(model, prompt, p.maxNew, {}, async () => {
        const ctx = await share.prepare(p.edited)
        if (!ctx.report.hit) throw new Error(`pair ${pair}: the edited context did not align to the cached one`)
        report = { edited: ctx.report.edited, exact: ctx.report.exact, recomputed: ctx.report.recomputed.length }
        seen.decode = ctx.report.decode
        return { reuse: ctx }
      })
      emit({ ...base, variant: name, correct: strictCorrect(r.text, p.answer), text: r.text, ttftMs: r.ttftMs, ...report, refreshes: seen.decode?.refreshes ?? 0 })
    }
  }
  model.dispose()
}

function table(rows: Row[]): void {
  const variants = ['full prefill', ...VARIANTS.map((v) => v.name)]
  const full = rows.filter((r) => r.variant === 'full prefill')
  const fullTtft = median(full.map((r) => r.ttftMs))
  const fullMs = new Map(full.map((r) => [r.pair, r.ttftMs]))
  const pct = (xs: Row[]) => (xs.length ? (100 * xs.filter((r) => r.correct).length) / xs.length : NaN)
  console.log(`KVShare, fixture-14m, ${full.length} edited pairs at ${LENGTH} tokens (${EDITS} haystack sentence(s) replaced), tasks ${TASKS.join(',')}`)
  console.log(['variant'.padEnd(20), ...TASKS.map((t) => t.padStart(12)), 'all'.padStart(10), 'vs full'.padStart(8), 'TTFT ms'.padStart(9), 'speedup'.padStart(8), 'pair median'.padStart(12), 'edited'.padStart(7), 'exact'.padStart(6), 'recomp'.padStart(7), 'refresh'.padStart(8)].join(' '))
  for (const v of variants) {
    const mine = rows.filter((r) => r.variant === v)
    const acc = accuracyCells(mine, TASKS)
    const ttft = median(mine.map((r) => r.ttftMs))
    const perPair = median(mine.map((r) => fullMs.get(r.pair)! / r.ttftMs))
    const points = pct(mine) - pct(full)
    console.log([
      v.padEnd(20), ...acc, `${pct(mine).toFixed(1)}%`.padStart(10), `${points >= 0 ? '+' : ''}${points.toFixed(1)}`.padStart(8), ttft.toFixed(0).padStart(9),
      `${(fullTtft / ttft).toFixed(2)}x`.padStart(8), `${perPair.toFixed(2)}x`.padStart(12),
      String(median(mine.map((r) => r.edited))).padStart(7), String(median(mine.map((r) => r.exact))).padStart(6), String(median(mine.map((r) => r.recomputed))).padStart(7),
      (mine.reduce((a, r) => a + (r.refreshes ?? 0), 0) / Math.max(1, mine.length)).toFixed(2).padStart(8),
    ].join(' '))
  }
  console.log('edited/exact/recomp: medians of the edited tokens, the exact common prefix and the tokens recomputed after the check layer; refresh: mean decode-time refreshes a pair')
  if (REFRESH.includes('on')) console.log(`+decode: decode-time recompute at threshold ${DECODE.threshold}, ${DECODE.tokens} tokens a refresh, at most ${DECODE.maxRefreshes} refreshes`)
}

// --from FILE: the table of rows written earlier with --out (a run cut short reports what it finished;
// pass the run's --length and --ratios with it)
const from = arg('from', '')
const rows = from
  ? readFileSync(from, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Row)
  : await runShards<Row>(fileURLToPath(import.meta.url), WORKERS, OUT, runShard)
if (rows) {
  // whole pairs only (a run cut short may end between a pair's variants)
  const n = new Map<number, number>()
  for (const r of rows) n.set(r.pair, (n.get(r.pair) ?? 0) + 1)
  table(rows.filter((r) => n.get(r.pair) === 1 + VARIANTS.length))
}

// Elastic-Cache against full recomputation on a masked diffusion LM (issue 19): the same prompts (the eval's
// passkey and niah_single at 1024 tokens by default) decoded by iterative unmasking twice in one process,
// once recomputing every token at every step and once with Elastic-Cache (arXiv 2510.14973); per task,
// each one's accuracy (strict, as the eval scores), its decoding time, and Elastic-Cache's speedup as
// the ratio of the two times measured in this run, with what it recomputed (share of the full forward's
// token rows, steps that refreshed some layer). The order of the two alternates from sample to sample.
//   npm run build && node dist/bench/diffusion.js --model models/diffusion-14m [--tasks passkey,niah_single]
//     [--length 1024] [--samples 8] [--block-length 8] [--gen-length N] [--steps N] [--gamma 0.9]
//     [--window N | --elastic elastic-cache:gamma=0.9,refreshFrom=next-layer,...] [--threads N] [--json FILE]
import { writeFileSync } from 'node:fs'
import { EvalSession } from '../src/eval/session.js'
import type { SampleOutcome } from '../src/eval/results.js'
import { diffusionCacheFromSpec, type DiffusionDecoding } from '../src/eval/diffusion.js'
import { isTaskName, type TaskName } from '../src/eval/tasks.js'
import { DEFAULT_SEED } from '../src/eval/runner.js'

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || argv[i + 1] === undefined) throw new Error(`expected --name value pairs, got ${argv.slice(i).join(' ')}`)
    out[argv[i].slice(2)] = argv[i + 1]
  }
  return out
}

const int = (v: string | undefined, what: string): number | undefined => {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${what} must be a positive integer, got ${v}`)
  return n
}

interface Row {
  task: string
  samples: number
  /** strict: the continuation starts with the answer */
  fullAccuracy: number
  elasticAccuracy: number
  /** RULER's score: the share of the expected values found in the continuation */
  fullScore: number
  elasticScore: number
  sameText: number
  fullMs: number
  elasticMs: number
  speedup: number
  computeRatio: number
  refreshSteps: number
  steps: number
}

export async function main(argv = process.argv.slice(2)): Promise<Row[]> {
  const a = args(argv)
  if (!a.model) throw new Error('--model DIR is required (a Dream-format diffusion model folder)')
  const tasks = (a.tasks ?? 'passkey,niah_single').split(',')
  for (const t of tasks) if (!isTaskName(t)) throw new Error(`unknown task ${t}`)
  const length = int(a.length, 'length') ?? 1024
  const samples = int(a.samples, 'samples') ?? 8
  const decoding: DiffusionDecoding = { blockLength: int(a['block-length'], 'block-length'), genLength: int(a['gen-length'], 'gen-length'), steps: int(a.steps, 'steps') }
  const elastic = a.elastic ?? `elastic-cache:gamma=${a.gamma ?? 0.9}${a.window ? `,windowLength=${a.window}` : ''}`
  diffusionCacheFromSpec(elastic)
  const session = await EvalSession.open({ model: a.model, backend: 'wasm', threads: int(a.threads, 'threads') })
  if (!session.model.config.diffusion) throw new Error(`${a.model} is not a diffusion model (config.json architectures: DreamModel)`)
  const kernels = session.model.kernels
  const rows: Row[] = []
  try {
    for (const task of tasks as TaskName[]) {
      const pairs: { full: SampleOutcome; ec: SampleOutcome }[] = []
      for (let i = 0; i < samples; i++) {
        // alternate which runs first, so that warm-up and machine drift fall on both alike
        const order = i % 2 === 0 ? ['full', elastic] : [elastic, 'full']
        const out = await session.run({ policies: order, sharePrefill: false, task, length, index: i, seed: DEFAULT_SEED, diffusion: decoding })
        const full = out[order.indexOf('full')]
        const ec = out[order.indexOf(elastic)]
        pairs.push({ full, ec })
        console.log(`${task} #${i}: full ${full.correct ? 'ok' : 'wrong'} ${full.diffusion!.decodeMs.toFixed(0)} ms, elastic ${ec.correct ? 'ok' : 'wrong'} ${ec.diffusion!.decodeMs.toFixed(0)} ms (computed ${(ec.diffusion!.computeRatio * 100).toFixed(1)}%, ${ec.diffusion!.refreshSteps}/${ec.diffusion!.steps} refresh steps)${full.continuation === ec.continuation ? '' : ` texts differ: ${JSON.stringify(full.continuation)} vs ${JSON.stringify(ec.continuation)}`}`)
      }
      const sum = (f: (p: (typeof pairs)[number]) => number) => pairs.reduce((s, p) => s + f(p), 0)
      const fullMs = sum((p) => p.full.diffusion!.decodeMs)
      const elasticMs = sum((p) => p.ec.diffusion!.decodeMs)
      rows.push({
        task, samples,
        fullAccuracy: sum((p) => Number(p.full.correct)) / samples,
        elasticAccuracy: sum((p) => Number(p.ec.correct)) / samples,
        fullScore: sum((p) => p.full.score) / samples,
        elasticScore: sum((p) => p.ec.score) / samples,
        sameText: sum((p) => Number(p.full.continuation === p.ec.continuation)) / samples,
        fullMs, elasticMs, speedup: fullMs / elasticMs,
        computeRatio: sum((p) => p.ec.diffusion!.computeRatio) / samples,
        refreshSteps: sum((p) => p.ec.diffusion!.refreshSteps) / samples,
        steps: sum((p) => p.ec.diffusion!.steps) / samples,
      })
    }
  } finally {
    session.dispose()
  }
  console.log(`\n${a.model}, ${length} tokens, ${samples} samples a task, ${elastic} vs full recomputation (${kernels}):`)
  console.log('task         full acc  elastic acc  full RULER  elastic RULER  same text  full ms/sample  elastic ms/sample  speedup  computed  refresh steps')
  for (const r of rows) {
    console.log(`${r.task.padEnd(12)} ${r.fullAccuracy.toFixed(3).padStart(8)}  ${r.elasticAccuracy.toFixed(3).padStart(11)}  ${r.fullScore.toFixed(3).padStart(10)}  ${r.elasticScore.toFixed(3).padStart(13)}  ${r.sameText.toFixed(3).padStart(9)}  ${(r.fullMs / r.samples).toFixed(0).padStart(14)}  ${(r.elasticMs / r.samples).toFixed(0).padStart(17)}  ${('x' + r.speedup.toFixed(2)).padStart(7)}  ${(r.computeRatio * 100).toFixed(1).padStart(7)}%  ${r.refreshSteps.toFixed(1)}/${r.steps.toFixed(0)}`)
  }
  if (a.json) writeFileSync(a.json, JSON.stringify({ model: a.model, length, samples, elastic, decoding, rows }, null, 2))
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => {
    console.error(e.message)
    process.exit(2)
  })
}

/**
 * Policy accuracy on the fixture's retrieval tasks, the kvpress protocol (peers.md): prefill all but the
 * last prompt token, compress, decode the answer greedily from the compressed cache. Runs `evaluate()`,
 * which prefills each sample once and starts every policy from a copy of that prefill.
 *   node dist/bench/policies-accuracy.js --samples 8 --tasks passkey,niah_single,vt --length 4096 \
 *     --policies 'full;snapkv:budget=0.25;...' [--first I] [--workers N] [--out rows.json]
 * --from a.json,b.json prints the table of earlier runs merged (--first splits a run over processes).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { evaluate } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { SampleOutcome } from '../src/eval/results.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

async function main(): Promise<void> {
  const from = arg('from', '')
  if (from) {
    // tables from earlier runs' --out files, merged
    const rows: SampleOutcome[] = from.split(',').flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as SampleOutcome[])
    printTable(rows, [...new Set(rows.map((r) => r.policy))], [...new Set(rows.map((r) => r.task))])
    return
  }
  const tasks = arg('tasks', 'passkey,niah_single,vt').split(',')
  const specs = arg('policies', 'full;snapkv:budget=0.25').split(';').map((s) => s.trim()).filter(Boolean)
  const rows: SampleOutcome[] = []
  await evaluate({
    model: defaultModelDir(), policies: specs, tasks, lengths: [Number(arg('length', '4096'))], samples: Number(arg('samples', '8')),
    firstSample: Number(arg('first', '0')), seed: Number(arg('seed', '1')), backend: 'wasm',
    workers: process.argv.includes('--workers') ? Number(arg('workers', '1')) : undefined,
    onOutcome: (o) => {
      rows.push(o)
      process.stderr.write(`${o.task} #${o.index} ${o.correct ? '1' : '0'} ${o.policy}\n`)
    },
  })
  const out = arg('out', '')
  if (out) writeFileSync(out, JSON.stringify(rows, null, 1))
  printTable(rows, specs, tasks)
}

export function printTable(rows: SampleOutcome[], specs: string[], tasks: string[]): void {
  const acc = (p: string, t: string) => {
    const r = rows.filter((x) => x.policy === p && x.task === t)
    return r.filter((x) => x.correct).length / Math.max(1, r.length)
  }
  const fullMean = specs.includes('full') ? tasks.reduce((a, t) => a + acc('full', t), 0) / tasks.length : NaN
  const mean = (p: string, f: (x: SampleOutcome) => number) => {
    const r = rows.filter((x) => x.policy === p)
    return r.reduce((a, x) => a + f(x), 0) / Math.max(1, r.length)
  }
  console.log(`| policy | KV kept | KV MiB | ${tasks.join(' | ')} | mean | of full | RULER score | samples |`)
  console.log(`| --- | --- | --- | ${tasks.map(() => '---').join(' | ')} | --- | --- | --- | --- |`)
  for (const p of specs) {
    const m = tasks.reduce((a, t) => a + acc(p, t), 0) / tasks.length
    console.log(`| ${p} | ${(mean(p, (x) => x.kvBytes / x.kvBytesFull) * 100).toFixed(1)}% | ${(mean(p, (x) => x.kvBytes) / 2 ** 20).toFixed(2)} | ` +
      `${tasks.map((t) => acc(p, t).toFixed(2)).join(' | ')} | ${m.toFixed(2)} | ${((m / fullMean) * 100).toFixed(0)}% | ${mean(p, (x) => x.score).toFixed(2)} | ${rows.filter((x) => x.policy === p).length} |`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

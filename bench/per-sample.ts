// Per-sample outcomes of policy settings through the eval's own session (continuation and KV bytes of
// every generation), as JSON, so two builds can be compared sample by sample (a refactor must change
// none). Prompts of `--length` tokens, samples 0..N-1 of passkey, niah_single and vt, seed 1.
//   node dist/bench/per-sample.js OUT.json [--length 1024] [--samples 2] SPEC [SPEC ...]
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { EvalSession } from '../src/eval/session.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { TaskName } from '../src/eval/tasks.js'

const { values, positionals } = parseArgs({ allowPositionals: true, options: { length: { type: 'string', default: '1024' }, samples: { type: 'string', default: '2' } } })
const [out, ...specs] = positionals
if (!out || specs.length === 0) throw new Error('usage: node dist/bench/per-sample.js OUT.json [--length 1024] [--samples 2] SPEC [SPEC ...]')
const session = await EvalSession.open({ model: defaultModelDir(), backend: 'wasm' })
const rows = []
for (const task of ['passkey', 'niah_single', 'vt'] as TaskName[]) {
  for (let index = 0; index < Number(values.samples); index++) {
    const outcomes = await session.run({ policies: specs, sharePrefill: true, task, length: Number(values.length), index, seed: 1 })
    for (const o of outcomes) rows.push({ policy: o.policy, task, index, correct: o.correct, continuation: o.continuation, kvBytes: o.kvBytes })
    console.log(`${task} ${index}: ${outcomes.length} settings`)
  }
}
writeFileSync(out, JSON.stringify(rows, null, 1))
process.exit(0)

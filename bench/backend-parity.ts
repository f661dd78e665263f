// The same eval samples on the wasm core and on the WebGPU runtime: accuracy per policy and task on each
// backend, and for every sample whose greedy output differs, the first differing step with the logit
// margin (top-1 minus top-2) each backend had there: a small margin is a float-rounding tie, not a bug.
//   node dist/bench/backend-parity.js --prompts FILE [--policy SPEC ...] [--threads N] [--json FILE]
// FILE: `kvkit prompts ... --out FILE` (the eval's samples as token ids). Each sample is prefilled once
// per backend for all policies (LlamaModel.prefillPrompt), as `kvkit eval` does.
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { readPromptsFile, type PromptSample } from '../src/eval/prompts-file.js'
import { strictCorrect } from '../src/eval/score.js'

const MODEL = 'models/fixture-14m'

interface Run {
  ids: number[]
  /** per decode step: top-1 minus top-2 logit */
  margins: number[]
  correct: boolean
}

interface Row {
  policy: string
  task: string
  index: number
  wasm: Run
  webgpu: Run
  /** first decode step whose token differs, or -1 */
  differsAt: number
}

function margin(logits: Float32Array): number {
  let a = -Infinity
  let b = -Infinity
  for (const v of logits) {
    if (v > a) {
      b = a
      a = v
    } else if (v > b) b = v
  }
  return a - b
}

async function runAll(model: LlamaModel, s: PromptSample, policies: string[]): Promise<Run[]> {
  const prefill = await model.prefillPrompt(s.prompt_ids, policies.map((p) => (p === 'full' ? null : p)))
  const out: Run[] = []
  for (const p of policies) {
    const margins: number[] = []
    const r = await model.generate(s.prompt_ids, {
      maxNewTokens: s.answer_ids.length + 3, policy: p === 'full' ? undefined : p, prefill, onLogits: (l) => margins.push(margin(l)),
    }).result
    out.push({ ids: r.ids, margins, correct: strictCorrect(r.text, s.answer) })
  }
  return out
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { prompts: { type: 'string' }, policy: { type: 'string', multiple: true }, threads: { type: 'string' }, json: { type: 'string' } },
  })
  if (!values.prompts) throw new Error('--prompts FILE is required (kvkit prompts ... --out FILE)')
  const policies = values.policy?.length ? values.policy : ['full']
  const wasm = await loadModel(MODEL, { backend: 'wasm', threads: Number(values.threads ?? 1) })
  const gpu = await loadModel(MODEL, { backend: 'webgpu' })
  const samples = readPromptsFile(values.prompts, wasm.config.vocab)
  console.log(`${samples.length} samples x ${policies.length} policies; webgpu adapter: ${(gpu.backend as { device?: { adapterName: string } }).device?.adapterName}`)
  const rows: Row[] = []
  const ms = { wasm: 0, webgpu: 0 }
  for (const s of samples) {
    let t = performance.now()
    const a = await runAll(wasm, s, policies)
    ms.wasm += performance.now() - t
    t = performance.now()
    const b = await runAll(gpu, s, policies)
    ms.webgpu += performance.now() - t
    policies.forEach((policy, i) => {
      let differsAt = -1
      for (let j = 0; j < Math.max(a[i].ids.length, b[i].ids.length); j++) {
        if (a[i].ids[j] !== b[i].ids[j]) {
          differsAt = j
          break
        }
      }
      rows.push({ policy, task: s.task, index: s.index, wasm: a[i], webgpu: b[i], differsAt })
    })
  }
  console.log(`time: wasm ${(ms.wasm / 1000).toFixed(1)} s, webgpu ${(ms.webgpu / 1000).toFixed(1)} s (prefill and decode of every sample and policy)`)
  console.log('policy | task | samples | wasm accuracy | webgpu accuracy | same output')
  const cells = new Map<string, Row[]>()
  for (const r of rows) cells.set(`${r.policy} | ${r.task}`, [...(cells.get(`${r.policy} | ${r.task}`) ?? []), r])
  for (const [k, rs] of cells) {
    const acc = (f: (r: Row) => boolean) => rs.filter(f).length
    console.log(`${k} | ${rs.length} | ${acc((r) => r.wasm.correct)}/${rs.length} | ${acc((r) => r.webgpu.correct)}/${rs.length} | ${acc((r) => r.differsAt < 0)}/${rs.length}`)
  }
  for (const r of rows.filter((r) => r.differsAt >= 0)) {
    const j = r.differsAt
    console.log(`differs: ${r.policy} ${r.task} #${r.index} at step ${j}: margin there wasm ${r.wasm.margins[j]?.toFixed(5)}, webgpu ${r.webgpu.margins[j]?.toFixed(5)} (correct: wasm ${r.wasm.correct}, webgpu ${r.webgpu.correct})`)
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ policies, samples: samples.length, ms, rows }, null, 1) + '\n')
  wasm.dispose()
  gpu.dispose()
}

await main()

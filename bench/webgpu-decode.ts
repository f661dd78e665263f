// Decode speed of the fixture model at long contexts, full cache against the recommended eviction and
// TokenSelect, on any backend (issue 13: WebGPU beside PyTorch eager, tools/pytorch-gpu-decode.py).
//   node dist/bench/webgpu-decode.js [--backend webgpu] [--lengths 4096,8192] [--new 64]
//     [--policies full,unionkv:budget=0.25,tokenselect:tokens=512,first=32,last=64] [--runs 3]
//     [--chunk 128] [--kv-dtype float16] [--ids-out ids.json] [--json out.json]
// Protocol (kvpress's, the same as tools/pytorch-gpu-decode.py): prompt ids of exactly each length from
// the eval's task prompts (bench/exact-prompt.ts); `model.generate` prefills ids[0 .. n-1), the policy
// decides, then `--new` greedy steps decode from ids[n-1]. End-of-sequence is ignored so every
// generation runs all its steps: the model is loaded through the public API from its files with
// eos_token_id set to null (kvkit then has no end token, as Hugging Face's generate with
// eos_token_id=None). One warm-up generation per policy, then `--runs` generations per (length, policy),
// policies interleaved within each run; medians of `result.stats.prefillMs` and `decodeMsPerToken`.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseConfig } from '../src/model/config.js'
import type { LlamaModel } from '../src/model/model.js'
import type { GenerateResult } from '../src/model/types.js'
import { loadModel } from '../src/node/load.js'
import type { KVDtype } from '../src/cache/formats.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { createPolicy } from '../src/policies/registry.js'
import { exactLengthPrompt } from './exact-prompt.js'
import { DecodeBenchArgumentError, parseDecodeBenchArgs, type DecodeBenchOptions } from './webgpu-decode-options.js'

export interface DecodeRow {
  length: number
  policy: string
  backend: string
  /** medians over the runs */
  prefillMs: number
  decodeMsPerToken: number
  tokensPerS: number
  /** this policy's decode speed over the full cache's, same length, same process */
  speedupOverFull: number | null
  prefillRunsMs: number[]
  decodeRunsMsPerToken: number[]
  /** the greedy ids of the last run; idsStable: every run gave the same */
  ids: number[]
  idsStable: boolean
  finishReason: string
  kvBytes: number
  kvBytesFull: number
  /**
   * steps of the last run whose cache half ran on the CPU (GpuLlamaForward.steps.cpuAttention; 0: prefill
   * and decode wholly on the GPU, TokenSelect's selection included); null on wasm
   */
  cpuAttentionSteps: number | null
  /** the policy's counters of the last run (TokenSelect: Selection Cache lookups, hits, hit rate) */
  policyStats: Record<string, number> | null
}

export interface DecodeReport {
  bench: 'webgpu-decode'
  date: string
  backend: string
  kernels: string
  /** prefill chunk in tokens */
  chunk: number
  /** the cache's element type (--kv-dtype) */
  kvDtype: KVDtype
  model: string
  task: string
  seed: number
  newTokens: number
  runs: number
  /** set when prompt + new tokens pass the config's max_position_embeddings */
  contextLimit: number | null
  eosIgnored: true
  /** per length, sha256 of the prompt ids joined by ',' (tools/pytorch-gpu-decode.py checks its prompts by it) */
  promptSha256: Record<number, string>
  rows: DecodeRow[]
}

export const promptSha256 = (ids: readonly number[]) => createHash('sha256').update(ids.join(',')).digest('hex')

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

/** The model folder's files, with end-of-sequence removed from config.json and generation_config.json. */
function filesWithoutEos(dir: string): { files: Map<string, Uint8Array>; config: unknown; generation: unknown } {
  const files = new Map<string, Uint8Array>()
  let config: unknown
  let generation: unknown
  for (const name of readdirSync(dir)) {
    if (!statSync(join(dir, name)).isFile()) continue
    const bytes = readFileSync(join(dir, name))
    if (name === 'config.json' || name === 'generation_config.json') {
      const json = { ...JSON.parse(bytes.toString('utf8')), eos_token_id: null }
      if (name === 'config.json') config = json
      else generation = json
      files.set(name, new TextEncoder().encode(JSON.stringify(json)))
    } else files.set(name, bytes)
  }
  if (config === undefined) throw new DecodeBenchArgumentError(`--model: ${dir} has no config.json`)
  return { files, config, generation }
}

type Run = GenerateResult & { cpuAttentionSteps: number | null }

async function generate(model: LlamaModel, ids: number[], policy: string, steps: number): Promise<Run> {
  const before = model.gpu?.steps.cpuAttention
  const r = await model.generate(ids, { policy, maxNewTokens: steps, temperature: 0 }).result
  return { ...r, cpuAttentionSteps: before === undefined ? null : model.gpu!.steps.cpuAttention - before }
}

const pad = (s: string | number, n: number) => String(s).padStart(n)

function table(rows: DecodeRow[]): string {
  const w = Math.max(6, ...rows.map((r) => r.policy.length))
  const head = `${'length'.padStart(6)}  ${'policy'.padEnd(w)}  ${pad('prefill ms', 10)}  ${pad('decode ms/tok', 13)}  ${pad('tok/s', 8)}  ${pad('x full', 6)}  ${pad('cpu steps', 9)}  ids`
  return [head, ...rows.map((r) =>
    `${pad(r.length, 6)}  ${r.policy.padEnd(w)}  ${pad(r.prefillMs.toFixed(1), 10)}  ${pad(r.decodeMsPerToken.toFixed(3), 13)}  ${pad(r.tokensPerS.toFixed(1), 8)}  ${pad(r.speedupOverFull === null ? '-' : r.speedupOverFull.toFixed(2), 6)}  ${pad(r.cpuAttentionSteps ?? '-', 9)}  ${r.ids.slice(0, 8).join(',')}${r.ids.length > 8 ? ',...' : ''}${r.idsStable ? '' : ' (runs differ)'}`)].join('\n')
}

/** Runs the bench; with --ids-only, writes the prompt ids and returns null. */
export async function main(argv = process.argv.slice(2)): Promise<DecodeReport | null> {
  const o: DecodeBenchOptions = parseDecodeBenchArgs(argv, defaultModelDir())
  const { files, config, generation } = filesWithoutEos(o.model)
  const shape = parseConfig(config, generation)
  // every policy's options are checked against the model's shape before the weights load
  for (const spec of o.policies) {
    try {
      createPolicy(spec, shape)
    } catch (e) {
      throw new DecodeBenchArgumentError(`--policies: ${JSON.stringify(spec)}: ${(e as Error).message}`)
    }
  }
  const longest = Math.max(...o.lengths) + o.newTokens
  const contextLimit = longest > shape.maxPositions ? longest : null
  const model = await loadModel(files, { backend: o.backend, threads: o.threads, chunk: o.chunk, kvDtype: o.kvDtype, ...(contextLimit ? { contextLimit } : {}) })
  try {
    const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? 0, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
    const prompts = o.lengths.map((length) => ({ length, ids: exactLengthPrompt(builder, o.task, length, o.seed) }))
    if (o.idsOut)
      writeFileSync(o.idsOut, JSON.stringify({ model: o.model, task: o.task, seed: o.seed, note: 'prompts of exactly `length` tokens (bench/exact-prompt.ts)', prompts }) + '\n')
    if (o.idsOnly) return null
    console.log(`kvkit ${o.backend} (${model.kernels}), prefill chunks of ${model.forward.chunk}, ${o.kvDtype} KV, ${o.task} prompts, ${o.newTokens} greedy steps, EOS ignored, ${o.runs} runs after a warm-up${contextLimit ? `, context limit lifted to ${contextLimit}` : ''}`)
    // warm-up: every policy's kernels (pipelines, on WebGPU) once, on the shortest prompt
    const shortest = prompts.reduce((a, b) => (a.length <= b.length ? a : b))
    for (const spec of o.policies) await generate(model, shortest.ids, spec, Math.min(o.newTokens, 8))
    const rows: DecodeRow[] = []
    for (const { length, ids } of prompts) {
      const results = new Map<string, Run[]>(o.policies.map((p) => [p, []]))
      // policies interleaved within each run, so a slow spell of a shared machine hits them alike
      for (let r = 0; r < o.runs; r++) for (const spec of o.policies) results.get(spec)!.push(await generate(model, ids, spec, o.newTokens))
      const fullDecode = results.has('full') ? median(results.get('full')!.map((x) => x.stats.decodeMsPerToken)) : null
      for (const spec of o.policies) {
        const rs = results.get(spec)!
        const last = rs[rs.length - 1]
        const decode = median(rs.map((x) => x.stats.decodeMsPerToken))
        rows.push({
          length, policy: spec, backend: o.backend,
          prefillMs: median(rs.map((x) => x.stats.prefillMs)),
          decodeMsPerToken: decode,
          tokensPerS: 1000 / decode,
          speedupOverFull: fullDecode === null ? null : fullDecode / decode,
          prefillRunsMs: rs.map((x) => x.stats.prefillMs),
          decodeRunsMsPerToken: rs.map((x) => x.stats.decodeMsPerToken),
          ids: last.ids,
          idsStable: rs.every((x) => x.ids.join() === last.ids.join()),
          finishReason: last.finishReason,
          kvBytes: last.stats.kvBytes.total,
          kvBytesFull: last.stats.kvBytesFull,
          cpuAttentionSteps: last.cpuAttentionSteps,
          policyStats: last.stats.policy ?? null,
        })
      }
    }
    console.log(table(rows))
    const report: DecodeReport = {
      bench: 'webgpu-decode', date: new Date().toISOString(), backend: o.backend, kernels: String(model.kernels), chunk: model.forward.chunk, kvDtype: o.kvDtype, model: o.model,
      task: o.task, seed: o.seed, newTokens: o.newTokens, runs: o.runs, contextLimit, eosIgnored: true,
      promptSha256: Object.fromEntries(prompts.map((p) => [p.length, promptSha256(p.ids)])), rows,
    }
    if (o.json) writeFileSync(o.json, JSON.stringify(report, null, 1) + '\n')
    return report
  } finally {
    model.dispose()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await main()
  } catch (e) {
    if (!(e instanceof DecodeBenchArgumentError)) throw e
    console.error(`webgpu-decode: ${e.message}`)
    process.exitCode = 2
  }
}

/**
 * How long KVzip's prefill-end work holds the event loop, and how soon an abort during it ends the
 * generation: generate(prompt, { policy, maxNewTokens: 1 }) on a niah_single prompt of the shipped books
 * (fixture model, wasm), once to the end under a 5 ms timer (the longest gap between its ticks), then
 * once with its signal aborted halfway through the compression (prefill ms + compress ms / 2 after the
 * start), timing when the promise settles.
 *   node dist/bench/kvzip-stall.js [--root DIR] [--policy SPEC] [--tokens N]
 * --root: a built kvkit checkout whose dist/ is measured (default: this one), to compare a baseline;
 * defaults kvzip:plus=true, 3000 tokens. Kernel threads: KVKIT_THREADS (1 for a steady figure).
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { haystackBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import type { LlamaModel } from '../src/model/model.js'
import { longestStall } from './event-loop-stall.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

async function main(): Promise<void> {
  const root = resolve(arg('root', new URL('../..', import.meta.url).pathname))
  const spec = arg('policy', 'kvzip:plus=true')
  const tokens = Number(arg('tokens', '3000'))
  const mod = (p: string) => import(pathToFileURL(resolve(root, 'dist', p)).href)
  const { loadModel } = await mod('src/node/load.js')
  const { createPolicy } = await mod('src/policies/registry.js')
  const model: LlamaModel = await loadModel(defaultModelDir(), { backend: 'wasm' })
  const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId: model.config.bosTokenId ?? 0, books: haystackBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
  const ids = builder.build('niah_single', tokens, 1, 0).promptIds
  const run = (signal?: AbortSignal) => model.generate(ids, { maxNewTokens: 1, policy: createPolicy(spec, model.config), signal }).result
  const t0 = performance.now()
  const { result, stallMs } = await longestStall(() => run())
  const totalMs = performance.now() - t0
  // prefillMs includes the compression
  const abortAt = result.stats.prefillMs - result.stats.compressMs / 2
  const ac = new AbortController()
  const a0 = performance.now()
  const timer = setTimeout(() => ac.abort(), abortAt)
  const settled = await run(ac.signal).then(() => 'finished', (e: Error) => e.name)
  const settledMs = performance.now() - a0
  clearTimeout(timer)
  console.log(JSON.stringify({ root, spec, tokens: ids.length, kernels: model.kernels, totalMs: Math.round(totalMs), prefillMs: Math.round(result.stats.prefillMs), compressMs: Math.round(result.stats.compressMs), longestStallMs: Math.round(stallMs), abortAtMs: Math.round(abortAt), settled, settledMs: Math.round(settledMs) }))
  model.dispose()
}

await main()

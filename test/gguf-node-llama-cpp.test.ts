import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LlamaModel as LlamaCppModel } from 'node-llama-cpp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { llamaCppGreedy, llamaCppLogProbs, loadLlamaCppModel } from '../bench/peers/llama-cpp.js'
import { FIXTURE, argmax, logSoftmax, writeFixtureGguf } from './gguf-helpers.js'

// The GGUF files kvkit writes (tools/gguf-convert.ts) are what llama.cpp expects: node-llama-cpp 3.21.1
// (its prebuilt CPU build) loads them and computes the same next-token distributions as kvkit, whose
// safetensors logits match PyTorch's golden.json to 1e-5 (model-golden.test.ts).
const dir = mkdtempSync(join(tmpdir(), 'kvkit-llamacpp-'))
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as { input_ids: number[]; last_logits_top10: number[] }
const V = 4096
const ids = golden.input_ids
const peers = new Map<string, LlamaCppModel>()
const ours = new Map<string, LlamaModel>()

beforeAll(async () => {
  for (const t of ['f16', 'q8_0'] as const) {
    const path = await writeFixtureGguf(dir, t)
    peers.set(t, await loadLlamaCppModel(path))
    ours.set(t, await loadModel(path, { backend: 'wasm' }))
  }
}, 120_000)
afterAll(async () => {
  for (const m of peers.values()) await m.dispose()
  for (const m of ours.values()) m.dispose()
  rmSync(dir, { recursive: true, force: true })
})

/** max |log p_llama.cpp - log p_kvkit| over ids with p_kvkit > 1e-4 (llama.cpp drops the far tail's precision) */
function maxLogProbDiff(theirs: Float64Array, mine: Float64Array): number {
  let m = 0
  for (let i = 0; i < V; i++) if (mine[i] > Math.log(1e-4)) m = Math.max(m, Math.abs(theirs[i] - mine[i]))
  return m
}

describe('node-llama-cpp on kvkit-written GGUF files', () => {
  // llama.cpp keeps its KV cache in float16 and (q8_0) quantizes activations to 8 bits for the matmuls,
  // kvkit computes in float32: measured 0.02 (f16) and 0.6 (q8_0 files) at most on this prompt
  it.each([
    ['f16', 0.08],
    ['q8_0', 1.0],
  ] as const)('%s: the same top token as kvkit at all 30 positions, log-probabilities within %s', async (t, tol) => {
    const theirs = await llamaCppLogProbs(peers.get(t)!, ids, V)
    const mine = ours.get(t)!.logits(ids)
    let worst = 0
    for (let p = 0; p < ids.length; p++) {
      const row = logSoftmax(mine.subarray(p * V, (p + 1) * V))
      expect(argmax(theirs[p]), `position ${p}`).toBe(argmax(row))
      worst = Math.max(worst, maxLogProbDiff(theirs[p], row))
    }
    expect(worst).toBeLessThan(tol)
    expect(worst).toBeGreaterThan(0)
  })

  it('f16: the last position ranks golden.json top-10 ids as PyTorch does (top 5 in order)', async () => {
    const last = (await llamaCppLogProbs(peers.get('f16')!, ids, V))[ids.length - 1]
    const order = [...last.keys()].sort((a, b) => last[b] - last[a])
    expect(order.slice(0, 5)).toEqual(golden.last_logits_top10.slice(0, 5))
    expect(new Set(order.slice(0, 10))).toEqual(new Set(golden.last_logits_top10))
  })

  it.each(['F16', 'Q8_0'] as const)('f16 weights, %s KV cache: 24 greedy tokens equal to kvkit’s', async (kvType) => {
    const run = await llamaCppGreedy(peers.get('f16')!, ids, 24, { kvType })
    const mine = await ours.get('f16')!.generate(ids, { maxNewTokens: 24 }).result
    expect(run.tokens).toEqual(mine.ids)
  })

  it('the tokenizer llama.cpp builds from the metadata splits text as tokenizer.json does', () => {
    for (const text of ['The quick brown fox, said Mr. Holmes.', '\n\nQuestion: What is the pass key?\nAnswer:', 'naïve café — 1234567 “quotes”', '  two  spaces\tand a tab']) {
      expect(peers.get('f16')!.tokenize(text).map(Number), JSON.stringify(text)).toEqual(ours.get('f16')!.tokenizer.encode(text))
    }
  })
})

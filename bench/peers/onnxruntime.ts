import * as ort from 'onnxruntime-node'

/**
 * onnxruntime-node on the decoder-with-past ONNX export of tools/export-onnx.py (inputs `input_ids`,
 * `past_key_values.{i}.key|value`; outputs `logits`, `present.{i}.key|value`), run the way
 * transformers.js runs such models: each step feeds the previous step's presents back as the past.
 */

export interface OrtShape {
  layers: number
  kvHeads: number
  headDim: number
  vocab: number
}

export async function loadOrt(path: string, threads = 1): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' })
}

type Feeds = Record<string, ort.Tensor>

function emptyPast(s: OrtShape): Feeds {
  const feeds: Feeds = {}
  for (let l = 0; l < s.layers; l++) {
    for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, s.kvHeads, 0, s.headDim])
  }
  return feeds
}

/** one forward over `ids` after `past`: the logits [ids.length * vocab] and the new past */
export async function ortStep(session: ort.InferenceSession, s: OrtShape, ids: number[], past: Feeds = emptyPast(s)): Promise<{ logits: Float32Array; past: Feeds }> {
  const out = await session.run({ ...past, input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) })
  const next: Feeds = {}
  for (let l = 0; l < s.layers; l++) for (const kv of ['key', 'value']) next[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`]
  return { logits: out.logits.data as Float32Array, past: next }
}

function argmaxLast(logits: Float32Array, vocab: number): number {
  const at = logits.length - vocab
  let best = 0
  for (let i = 1; i < vocab; i++) if (logits[at + i] > logits[at + best]) best = i
  return best
}

/** greedy generation; the past's float32 bytes at the end come back too */
export async function ortGreedy(session: ort.InferenceSession, s: OrtShape, prompt: number[], newTokens: number): Promise<{ tokens: number[]; prefillMs: number; decodeMs: number; kvBytes: number }> {
  const t0 = performance.now()
  let { logits, past } = await ortStep(session, s, prompt)
  const tokens = [argmaxLast(logits, s.vocab)]
  const t1 = performance.now()
  while (tokens.length < newTokens) {
    ;({ logits, past } = await ortStep(session, s, [tokens[tokens.length - 1]], past))
    tokens.push(argmaxLast(logits, s.vocab))
  }
  const kvBytes = Object.values(past).reduce((a, t) => a + (t.data as Float32Array).byteLength, 0)
  return { tokens, prefillMs: t1 - t0, decodeMs: performance.now() - t1, kvBytes }
}

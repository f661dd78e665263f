import { getLlama, type Llama, type LlamaModel as LlamaCppModel } from 'node-llama-cpp'

/**
 * node-llama-cpp (llama.cpp's CPU build, the prebuilt binary its npm package ships) driven the way the
 * peers bench and the GGUF test need: token ids in, greedy tokens or next-token probabilities out.
 */

let llama: Promise<Llama> | undefined
/** the CPU build only (no GPU probing), never compiled from source here */
export function llamaCpp(): Promise<Llama> {
  return (llama ??= getLlama({ gpu: false, build: 'never', logLevel: 'error' as never, progressLogs: false }))
}

export type KvCacheType = 'F16' | 'Q8_0'

export interface LlamaCppRun {
  tokens: number[]
  /** prompt evaluation up to the first generated token */
  prefillMs: number
  /** the remaining tokens */
  decodeMs: number
}

export async function loadLlamaCppModel(path: string): Promise<LlamaCppModel> {
  return (await llamaCpp()).loadModel({ modelPath: path })
}

/**
 * Greedy generation of `newTokens` tokens after `prompt` with a KV cache of `kvType` (Q8_0 values need
 * flash attention in llama.cpp, so it is on for both types, for one code path). `threads` 0 = all cores;
 * default 1, as kvkit's wasm runs on one thread (llama.cpp's threads spin while they wait, so more
 * threads than idle cores make it 100x slower).
 */
export async function llamaCppGreedy(model: LlamaCppModel, prompt: number[], newTokens: number, opts: { kvType?: KvCacheType; threads?: number } = {}): Promise<LlamaCppRun> {
  const kv = opts.kvType ?? 'F16'
  const ctx = await model.createContext({
    contextSize: prompt.length + newTokens + 1, batchSize: 512, sequences: 1, flashAttention: true, threads: opts.threads ?? 1,
    experimentalKvCacheKeyType: kv, experimentalKvCacheValueType: kv,
  })
  try {
    const seq = ctx.getSequence()
    const tokens: number[] = []
    const t0 = performance.now()
    let t1 = t0
    for await (const t of seq.evaluate(prompt as never, { temperature: 0 })) {
      if (tokens.length === 0) t1 = performance.now()
      tokens.push(t as number)
      if (tokens.length === newTokens) break
    }
    return { tokens, prefillMs: t1 - t0, decodeMs: performance.now() - t1 }
  } finally {
    await ctx.dispose()
  }
}

/** log-probabilities of every vocabulary id as the next token after each prefix of `ids` (softmax at temperature 1) */
export async function llamaCppLogProbs(model: LlamaCppModel, ids: number[], vocab: number): Promise<Float64Array[]> {
  // one thread: llama.cpp's threads spin while they wait, which on a loaded machine costs 100x
  const ctx = await model.createContext({ contextSize: Math.max(64, ids.length + 1), batchSize: 512, sequences: 1, threads: 1 })
  try {
    const opts = { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }
    const out = await ctx.getSequence().controlledEvaluate(ids.map((id) => [id, opts] as never))
    return ids.map((_, p) => {
      const probs = out[p]?.next?.probabilities
      if (!probs) throw new Error(`node-llama-cpp returned no probabilities at position ${p}`)
      const row = new Float64Array(vocab).fill(-Infinity)
      for (const [id, pr] of probs) row[id as number] = Math.log(pr)
      return row
    })
  } finally {
    await ctx.dispose()
  }
}

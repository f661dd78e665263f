import type { PromptSample } from '../../src/eval/prompts-file.js'
import type { SampleOutcome } from '../../src/eval/results.js'
import { rulerScore, strictCorrect } from '../../src/eval/score.js'

/**
 * A peer library's greedy decoding run on the eval's exact prompt ids (`kvkit prompts`) and scored by
 * kvkit's own scorer, so a peer's accuracy cell is comparable with `kvkit eval --prompts FILE`'s:
 * the same ids in, the same number of new tokens (answer + 3, as src/eval/session.ts decodes), the same
 * strict and RULER scores (src/eval/score.ts).
 */
export interface GreedyPeer {
  /** the row's name, e.g. 'llama.cpp Q8_0 KV' */
  name: string
  /** the peer's KV-cache element type, for the cell's kvDtype column */
  kvDtype: string
  /** `newTokens` greedy ids after `prompt` (the peer may return fewer only if it stopped itself) */
  greedy(prompt: number[], newTokens: number): Promise<{ tokens: number[]; prefillMs: number; decodeMs: number }>
  /** bytes the peer's KV cache holds for `tokens` positions */
  kvBytes(tokens: number): number
}

/** the ids before the first end-of-sequence id: kvkit's generate stops there, and its text leaves it out */
export function untilEos(ids: readonly number[], eos: readonly number[]): number[] {
  const at = ids.findIndex((t) => eos.includes(t))
  return at < 0 ? ids.slice() : ids.slice(0, at)
}

/**
 * Runs `peer` on every sample, one after another, and scores each continuation.
 * `text` turns ids into the continuation's text (kvkit's tokenizer: the peers share the vocabulary);
 * `fullBytesPerToken` is kvkit's float32 full cache's bytes per position, for kvBytesFull.
 * Throws if the peer returns more tokens than asked (a driver bug would otherwise score extra text).
 */
export async function runPromptSamples(
  peer: GreedyPeer, samples: readonly PromptSample[], text: (ids: number[]) => string, eos: readonly number[], fullBytesPerToken: number,
  onOutcome?: (o: SampleOutcome) => void,
): Promise<SampleOutcome[]> {
  const out: SampleOutcome[] = []
  for (const s of samples) {
    const n = s.answer_ids.length + 3
    const r = await peer.greedy(s.prompt_ids, n)
    if (r.tokens.length > n) throw new Error(`${peer.name}: asked for ${n} tokens on ${s.task} #${s.index}, got ${r.tokens.length}`)
    const ids = untilEos(r.tokens, eos)
    const continuation = text(ids)
    const held = s.prompt_ids.length + r.tokens.length
    const o: SampleOutcome = {
      policy: peer.name, task: s.task, length: s.length, index: s.index, question: 'with',
      correct: strictCorrect(continuation, s.answer), score: rulerScore(continuation, s.expected), continuation,
      kvBytes: peer.kvBytes(held), kvBytesFull: fullBytesPerToken * held,
      prefillMs: r.prefillMs, compressMs: 0, decodeMsPerToken: r.tokens.length > 1 ? r.decodeMs / (r.tokens.length - 1) : 0,
      kernels: peer.name, kvDtype: peer.kvDtype, newTokens: ids.length,
    }
    onOutcome?.(o)
    out.push(o)
  }
  return out
}

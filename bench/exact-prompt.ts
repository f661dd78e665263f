/**
 * Prompts of exactly `length` tokens from the evaluation's task prompts (src/eval/prompt.ts, the
 * fixture's training layout), for speed figures that name a context length. The eval's own prompt
 * stops short of its length by the answer, the end token and part of a sentence; here the gap is filled
 * with haystack sentences of the next samples of the same task (whole sentences, the last one cut to
 * fit), placed just before the question block, so the needles stay where the builder put them and the
 * prompt still ends with "\n\nQuestion: ...\nAnswer:".
 */
import type { PromptBuilder } from '../src/eval/prompt.js'
import type { TaskName } from '../src/eval/tasks.js'

/** Token ids of a `task` prompt of exactly `length` tokens: sample (seed, index) topped up before its question. */
export function exactLengthPrompt(builder: PromptBuilder, task: TaskName, length: number, seed: number, index = 0): number[] {
  const sample = builder.build(task, length, seed, index)
  const question = sample.pieces[sample.pieces.length - 1]
  const context = sample.promptIds.slice(0, sample.promptIds.length - question.ids.length)
  const need = length - sample.promptIds.length
  const filler: number[] = []
  // each further sample holds about `length` tokens of haystack, so one is nearly always enough
  for (let k = 1; filler.length < need; k++) {
    if (k > 8) throw new Error(`cannot fill a ${task} prompt of ${length} tokens: 8 further samples gave only ${filler.length} of ${need} haystack tokens`)
    for (const p of builder.build(task, length, seed, index + k).pieces) {
      if (p.kind !== 'sentence') continue
      filler.push(...p.ids.slice(0, need - filler.length))
      if (filler.length === need) break
    }
  }
  const ids = [...context, ...filler, ...question.ids]
  if (ids.length !== length) throw new Error(`exactLengthPrompt: built ${ids.length} tokens for a length of ${length}`)
  return ids
}

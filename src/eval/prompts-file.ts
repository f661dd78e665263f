/**
 * Prompts as a JSONL file, one sample a line, so that kvkit and a peer library (kvpress on the GPU host)
 * run on identical token ids, not only on the same recipe:
 *   {"task": "passkey", "index": 0, "length": 4096, "prompt_ids": [...], "answer": " The pass key is 1.",
 *    "answer_ids": [...], "context_len": 4010, "expected": ["1"]}
 * `context_len` is where the question block starts (the query-agnostic loop compresses the ids before
 * it); `answer_ids` sets how many tokens are decoded (their count + 3); `expected` lists the values
 * RULER's score looks for (default: the trimmed answer). `length` and `index` only label the cell; a
 * (task, length, index) appears once.
 */
import { readFileSync } from 'node:fs'
import { checkOutputPath, writeOutputFile } from './output.js'
import type { TaskSample } from './prompt.js'
import { isTaskName, TASK_NAMES, type TaskName } from './tasks.js'

export interface PromptSample {
  task: TaskName
  index: number
  length: number
  prompt_ids: number[]
  answer: string
  answer_ids: number[]
  context_len: number
  expected: string[]
}

export class PromptsFileError extends Error {
  override name = 'PromptsFileError'
}

/** A built sample in the file's form; the context ends where the question block starts. */
export function promptSample(s: TaskSample): PromptSample {
  const question = s.pieces[s.pieces.length - 1]
  if (question.kind !== 'question') throw new Error(`sample ${s.task} #${s.index} does not end with its question block`)
  return {
    task: s.task, index: s.index, length: s.length, prompt_ids: s.promptIds, answer: s.answer, answer_ids: s.answerIds,
    context_len: s.promptIds.length - question.ids.length, expected: s.expected,
  }
}

/** Writes the samples as JSONL to `path`; EvalOutputError naming it where it cannot be written. */
export function writePromptsFile(path: string, samples: readonly PromptSample[]): void {
  checkOutputPath(path, 'prompts file')
  writeOutputFile(path, samples.map((s) => JSON.stringify(s)).join('\n') + '\n', 'prompts file')
}

const isIds = (x: unknown, vocab: number): x is number[] => Array.isArray(x) && x.length > 0 && x.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)

/** Reads and checks every line (ids inside the vocabulary, context_len inside the prompt); errors name the line. */
export function readPromptsFile(path: string, vocab: number): PromptSample[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    throw new PromptsFileError(`cannot read prompts file ${path}`)
  }
  const out: PromptSample[] = []
  const seen = new Set<string>()
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    const where = `${path}:${i + 1}`
    let o: Record<string, unknown>
    try {
      o = JSON.parse(line)
    } catch {
      throw new PromptsFileError(`${where}: not a JSON object`)
    }
    // null, a number or a list parse as JSON too
    if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new PromptsFileError(`${where}: not a JSON object`)
    if (typeof o.task !== 'string' || !isTaskName(o.task)) throw new PromptsFileError(`${where}: task ${JSON.stringify(o.task)} is not one of ${TASK_NAMES.join(', ')}`)
    if (!isIds(o.prompt_ids, vocab)) throw new PromptsFileError(`${where}: prompt_ids must be a non-empty list of token ids in [0, ${vocab})`)
    if (typeof o.answer !== 'string' || o.answer.trim() === '') throw new PromptsFileError(`${where}: answer must be a non-empty string`)
    if (!isIds(o.answer_ids, vocab)) throw new PromptsFileError(`${where}: answer_ids must be a non-empty list of token ids in [0, ${vocab})`)
    const n = o.prompt_ids.length
    // context_len's range [1, n - 1] is empty for one token, which the range alone did not say
    if (n < 2) throw new PromptsFileError(`${where}: prompt_ids has ${n} token; a sample needs at least 2 (its context, context_len of them, and the question after it)`)
    const c = o.context_len ?? n - 1
    if (!Number.isInteger(c) || (c as number) < 1 || (c as number) > n - 1) throw new PromptsFileError(`${where}: context_len ${JSON.stringify(o.context_len)} must be an integer in [1, ${n - 1}]`)
    const expected = o.expected ?? [o.answer.trim()]
    // an empty list has no score, and an empty string is found in every output
    if (!Array.isArray(expected) || expected.length === 0 || expected.some((e) => typeof e !== 'string' || e.trim() === ''))
      throw new PromptsFileError(`${where}: expected must be a non-empty list of non-empty strings, got ${JSON.stringify(o.expected)}`)
    // a label given in another form ("7") would be replaced, not read
    const label = (key: 'index' | 'length', min: number, d: number): number => {
      const x = o[key]
      if (x === undefined) return d
      if (!(Number.isInteger(x) && (x as number) >= min)) throw new PromptsFileError(`${where}: ${key} must be an integer of at least ${min}, got ${JSON.stringify(x)}`)
      return x as number
    }
    const index = label('index', 0, out.length)
    const length = label('length', 1, n)
    // a sample given twice would count twice in its cell
    const key = `${o.task}/${length}/${index}`
    if (seen.has(key)) throw new PromptsFileError(`${where}: sample ${o.task} at length ${length} index ${index} is given twice`)
    seen.add(key)
    out.push({ task: o.task, index, length, prompt_ids: o.prompt_ids, answer: o.answer, answer_ids: o.answer_ids, context_len: c as number, expected })
  })
  if (out.length === 0) throw new PromptsFileError(`${path}: no samples`)
  return out
}

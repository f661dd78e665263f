import type { Tokenizer } from '../model/types.js'
import { Rng } from './prng.js'
import type { Book } from './text.js'
import { shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'
import { isTaskName, makeTask, TASK_NAMES, type TaskName } from './tasks.js'

/**
 * Builds task prompts exactly as the fixture's generator (train.py, make_task_sample) did:
 *   BOS, haystack sentences with needles inserted between them, "\n\nQuestion: Q\nAnswer:"
 * Every piece (sentence, needle, question block, answer) is tokenized on its own and the ids are
 * concatenated. The haystack fills what is left of the context length after the BOS, the needles, the
 * question block, the answer and the end token; whole sentences only, so the total falls short of the
 * length by less than one sentence.
 */
export type PieceKind = 'bos' | 'sentence' | 'needle' | 'question'

export interface PromptPiece {
  kind: PieceKind
  text: string
  ids: number[]
}

export interface TaskSample {
  task: TaskName
  /** the context length asked for, in tokens (prompt + answer + end token) */
  length: number
  index: number
  pieces: PromptPiece[]
  promptIds: number[]
  answer: string
  answerIds: number[]
  /** the values RULER's score looks for in the continuation */
  expected: string[]
}

export interface PromptSource {
  tokenizer: Tokenizer
  /** the id that starts every prompt and ends every answer (<|endoftext|> on the fixture) */
  bosId: number
  books: readonly Book[]
  words: readonly string[]
}

/** The seed of one sample depends only on (seed, task, length, index): any subset of a run reproduces it. */
export function sampleSeed(seed: number, task: string, length: number, index: number): string {
  return `${seed}/${task}/${length}/${index}`
}

export class PromptBuilder {
  /** token ids of sentences already seen, per book: a haystack walks a few hundred of them */
  private readonly sentenceIds: Map<number, number[]>[]

  /**
   * @throws EvalArgumentError naming the bad field, before any prompt is built: a tokenizer without
   *   encode, a bosId that is no non-negative integer, books that are not a non-empty list of books with
   *   sentences (loadBooks), words that are not a list of non-empty strings; at build, a niah task with
   *   fewer than 10 words (it draws its keys from them)
   */
  constructor(private readonly source: PromptSource) {
    const fail = (m: string): never => { throw new EvalArgumentError(`PromptBuilder: ${m}`) }
    if (typeof source !== 'object' || source === null) fail(`needs { tokenizer, bosId, books, words }, got ${shownValue(source)}`)
    if (typeof source.tokenizer?.encode !== 'function') fail('tokenizer must have an encode(text) method (a model\'s tokenizer)')
    if (!(Number.isInteger(source.bosId) && source.bosId >= 0)) fail(`bosId must be a token id (a non-negative integer), got ${shownValue(source.bosId)}`)
    // an empty list was "randrange: empty range [0, 0)", a book without sentences "undefined is not iterable"
    if (!Array.isArray(source.books) || source.books.length === 0) fail(`books must be a non-empty list of books (loadBooks), got ${Array.isArray(source.books) ? 'an empty list' : shownValue(source.books)}`)
    const empty = source.books.find((b) => !(Array.isArray(b?.sentences) && b.sentences.length > 0))
    if (empty !== undefined) fail(`book ${shownValue(empty?.name ?? empty)} has no sentences (books come from loadBooks)`)
    // the niah tasks draw their keys from the words (an empty list was "choice from an empty list" at
    // build); passkey, vt and kv need none, so a passkey-only builder may pass [] (the playground does)
    if (!Array.isArray(source.words) || !source.words.every((w) => typeof w === 'string' && w !== ''))
      fail(`words must be a list of non-empty strings (the niah tasks' keys), got ${Array.isArray(source.words) ? 'a list with other entries' : shownValue(source.words)}`)
    this.sentenceIds = source.books.map(() => new Map())
  }

  encode(text: string): number[] {
    return this.source.tokenizer.encode(text)
  }

  private sentence(book: number, i: number): number[] {
    const cache = this.sentenceIds[book]
    let ids = cache.get(i)
    if (!ids) {
      ids = this.encode(this.source.books[book].sentences[i])
      cache.set(i, ids)
    }
    return ids
  }

  /** consecutive sentences from a random place of a random book, at least `tokens` long (train.py's haystack) */
  private haystack(tokens: number, rng: Rng): { book: number; index: number }[] {
    const books = this.source.books
    let b = rng.randrange(0, books.length)
    let i = rng.randrange(0, Math.max(1, books[b].sentences.length - 50))
    const out: { book: number; index: number }[] = []
    let n = 0
    while (n < tokens) {
      if (i >= books[b].sentences.length) {
        b = rng.randrange(0, books.length)
        i = 0
      }
      out.push({ book: b, index: i })
      n += this.sentence(b, i).length
      i++
    }
    return out
  }

  /**
   * The sample (task, length, seed, index) stands for; the same arguments give the same sample.
   * @throws EvalArgumentError naming the value: an unknown task, a length that is no positive integer or
   *   too short for the task's needles and question, or a haystack whose sentences cannot fill the length
   */
  build(task: TaskName, length: number, seed: number, index: number): TaskSample {
    if (typeof task !== 'string' || !isTaskName(task)) throw new EvalArgumentError(`unknown task ${shownValue(task)} (tasks: ${TASK_NAMES.join(', ')})`)
    if (!(Number.isInteger(length) && length >= 1)) throw new EvalArgumentError(`length must be a positive integer (tokens), got ${shownValue(length)}`)
    if (task.startsWith('niah') && this.source.words.length < 10)
      throw new EvalArgumentError(`PromptBuilder: task ${task} draws its keys from the words, which need at least 10 entries (loadWordList), got ${this.source.words.length}`)
    const rng = new Rng(sampleSeed(seed, task, length, index))
    const inst = makeTask(task, rng, this.source.words)
    const needleIds = inst.needles.map((t) => this.encode(t))
    const questionText = '\n\nQuestion: ' + inst.question + '\nAnswer:'
    const questionIds = this.encode(questionText)
    const answerIds = this.encode(inst.answer)
    const needleTokens = needleIds.reduce((s, x) => s + x.length, 0)
    const budget = length - 1 - questionIds.length - answerIds.length - needleTokens - 1
    if (budget <= 0) {
      throw new EvalArgumentError(`length ${length} is too short for task ${task}: the needles, question and answer alone take ${length - budget} tokens`)
    }
    const sentences: PromptPiece[] = []
    let n = 0
    for (const { book, index: i } of this.haystack(budget, rng)) {
      const ids = this.sentence(book, i)
      if (n + ids.length > budget) break
      sentences.push({ kind: 'sentence', text: this.source.books[book].sentences[i], ids })
      n += ids.length
    }
    // whole sentences fall short of the budget by less than one sentence; hundreds of tokens short, and
    // under half the budget, the haystack's sentences are not prose-sized
    if (budget - n > 256 && n < budget / 2) throw new EvalArgumentError(`the haystack filled ${n} of the ${budget} tokens a ${task} prompt of length ${length} needs: its sentences are too long or too few`)
    // needles at uniformly random sentence boundaries, kept in their order (vt's chain needs it)
    const at = inst.needles.map(() => rng.randrange(0, sentences.length + 1)).sort((a, b) => a - b)
    const body = sentences.slice()
    at.forEach((p, k) => body.splice(p + k, 0, { kind: 'needle', text: inst.needles[k], ids: needleIds[k] }))
    const pieces: PromptPiece[] = [
      { kind: 'bos', text: '', ids: [this.source.bosId] },
      ...body,
      { kind: 'question', text: questionText, ids: questionIds },
    ]
    return {
      task,
      length,
      index,
      pieces,
      promptIds: pieces.flatMap((p) => p.ids),
      answer: inst.answer,
      answerIds,
      expected: inst.expected,
    }
  }
}

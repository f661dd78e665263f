import type { Model } from '../model/types.js'
import type { BackendName } from '../backend/backend.js'
import { loadModel } from '../model/load.js'
import { createPolicy } from '../policies/registry.js'
import { PromptBuilder } from './prompt.js'
import type { SampleOutcome } from './results.js'
import { rulerScore, strictCorrect } from './score.js'
import type { TaskName } from './tasks.js'
import { loadBooks } from './text.js'
import { loadWordList } from './words.js'
import { defaultBooksDir, defaultWordsFile } from './paths.js'

/** One sample to run: everything needed to rebuild its prompt from scratch anywhere. */
export interface SampleJob {
  policy: string
  task: TaskName
  length: number
  index: number
  seed: number
}

export interface SessionOptions {
  model: string
  backend?: BackendName
  /** a .txt file or a folder of them; default: the held-out books in data/books */
  haystack?: string
}

/** A loaded model with its prompt builder: runs samples one after another (in a worker or in-process). */
export class EvalSession {
  private constructor(readonly model: Model, private readonly builder: PromptBuilder) {}

  static async open(opts: SessionOptions): Promise<EvalSession> {
    const model = await loadModel(opts.model, { backend: opts.backend ?? 'auto' })
    const bosId = model.config.bosTokenId ?? model.config.eosTokenIds[0]
    if (bosId === undefined) throw new Error(`model ${opts.model} names neither a BOS nor an EOS token to start prompts with`)
    const builder = new PromptBuilder({
      tokenizer: model.tokenizer,
      bosId,
      books: loadBooks(opts.haystack ?? defaultBooksDir()),
      words: loadWordList(defaultWordsFile()),
    })
    return new EvalSession(model, builder)
  }

  async run(job: SampleJob): Promise<SampleOutcome> {
    const sample = this.builder.build(job.task, job.length, job.seed, job.index)
    const policy = createPolicy(job.policy, this.model.config)
    // the answer, its end token, and two spare tokens, as train.py's evaluation decodes
    const gen = this.model.generate(sample.promptIds, { maxNewTokens: sample.answerIds.length + 3, policy: policy ?? undefined })
    const { text, stats } = await gen.result
    return {
      policy: job.policy,
      task: job.task,
      length: job.length,
      index: job.index,
      correct: strictCorrect(text, sample.answer),
      score: rulerScore(text, sample.expected),
      continuation: text,
      kvBytes: stats.kvBytes.total,
      kvBytesFull: stats.kvBytesFull,
      prefillMs: stats.prefillMs,
      decodeMsPerToken: stats.decodeMsPerToken,
      kernels: this.model.kernels,
    }
  }

  dispose(): void {
    this.model.dispose()
  }
}

import type { LlamaModel } from '../model/model.js'
import type { Policy } from '../policies/types.js'
import type { BackendName } from '../backend/backend.js'
import type { KVDtype } from '../cache/formats.js'
import { loadModel } from '../node/load.js'
import { KVzipShare } from '../policies/kvzip-share.js'
import { PromptBuilder } from './prompt.js'
import { promptSample, type PromptSample } from './prompts-file.js'
import type { SharedPrefill } from '../model/prefill.js'
import type { SampleOutcome } from './results.js'
import { rulerScore, strictCorrect } from './score.js'
import { diffusionOutcome, type DiffusionDecoding } from './diffusion.js'
import type { TaskName } from './tasks.js'
import { haystackBooks } from './text.js'
import { loadWordList } from './words.js'
import { EvalArgumentError } from './errors.js'
import { defaultBooksDir, defaultWordsFile } from './paths.js'

/** One sample to run under every policy: everything needed to rebuild its prompt from scratch anywhere. */
export interface SampleJob {
  /** policy specs, each run on this sample */
  policies: string[]
  /** prefill the prompt once for all policies (true) or once per policy (the per-policy path) */
  sharePrefill: boolean
  task: TaskName
  length: number
  index: number
  seed: number
  /** 'after': compress the context alone, then prefill the question on the compressed cache (default 'with') */
  question?: QuestionMode
  /** the sample itself (from a prompts file) instead of building it from (task, length, seed, index) */
  sample?: PromptSample
  /** a diffusion model's decoding (its policies are then decoding caches: `full`, `elastic-cache...`) */
  diffusion?: DiffusionDecoding
}

/** Whether the question is compressed with the context (kvpress's query-aware loop) or meets the compressed cache after. */
export type QuestionMode = 'with' | 'after'

export interface SessionOptions {
  model: string
  backend?: BackendName
  /** kernel threads of the session's model (loadModel's `threads`) */
  threads?: number
  /** a .txt file or a folder of them; default: the held-out books in data/books */
  haystack?: string
  /** .txt files or folders whose books together make the haystack (instead of `haystack`) */
  books?: string[]
  /** loadModel's contextLimit: lengths past max_position_embeddings (see LoadOptions.contextLimit) */
  contextLimit?: number
  /** the KV-cache element type every generation uses (default 'float32') */
  kvDtype?: KVDtype
  /** the wasm build (loadModel's `wasm.relaxed`): the eval's workers all run the one the parent chose */
  relaxed?: boolean
}

/** A loaded model with its prompt builder: runs samples one after another (in a worker or in-process). */
export class EvalSession {
  private constructor(readonly model: LlamaModel, private readonly builder: PromptBuilder) {}

  /**
   * Loads the session's model; `signal` aborts the load between its file reads (the promise rejects with
   * its reason, nothing stays allocated). It is no SessionOptions field: those cross to worker threads,
   * and a signal does not clone.
   */
  static async open(opts: SessionOptions, signal?: AbortSignal): Promise<EvalSession> {
    const model = await loadModel(opts.model, {
      backend: opts.backend ?? 'auto', contextLimit: opts.contextLimit, kvDtype: opts.kvDtype, threads: opts.threads, signal,
      ...(opts.relaxed === undefined ? {} : { wasm: { relaxed: opts.relaxed } }),
    })
    // the BOS is known only once the config is parsed, and a bad haystack after the load: the model must not outlive a refusal
    let builder: PromptBuilder
    try {
      const bosId = model.config.bosTokenId ?? model.config.eosTokenIds[0]
      if (bosId === undefined) throw new EvalArgumentError(`model ${opts.model} names neither a BOS nor an EOS token to start prompts with`)
      builder = new PromptBuilder({
        tokenizer: model.tokenizer,
        bosId,
        books: haystackBooks(defaultBooksDir(), opts.haystack, opts.books),
        words: loadWordList(defaultWordsFile()),
      })
    } catch (e) {
      model.dispose()
      throw e
    }
    return new EvalSession(model, builder)
  }

  /** the sample (task, length, seed, index) stands for, as a prompts-file line */
  sample(task: TaskName, length: number, seed: number, index: number): PromptSample {
    return promptSample(this.builder.build(task, length, seed, index))
  }

  /**
   * The sample under each of the job's policies, outcomes in the job's policy order; `onOutcome` hears
   * each as soon as its generation ends (a cell's results need not wait for the sample's other policies).
   * `signal` aborts the sample's prefills and generations between their chunks and steps (a diffusion
   * model's decoding between its steps).
   */
  async run(job: SampleJob, onOutcome?: (o: SampleOutcome) => void, signal?: AbortSignal): Promise<SampleOutcome[]> {
    const sample = job.sample ?? this.sample(job.task, job.length, job.seed, job.index)
    if (this.model.config.diffusion) return this.runDiffusion(job, sample, onOutcome, signal)
    const ids = sample.prompt_ids
    // every kvzip policy of the sample (any budget, plain or plus) from one context reconstruction
    const kvzip = new KVzipShare()
    const policies = job.policies.map((spec) => kvzip.policy(spec, this.model.config))
    // policies that store keys alike share one prefill (StreamingLLM's re-rotation stores them pre-RoPE);
    // in the question-after loop the shared prefill holds the context alone
    const share = job.sharePrefill
    const contextTokens = job.question === 'after' ? sample.context_len : undefined
    const groups = new Map<string, number[]>()
    policies.forEach((p, i) => {
      const key = share ? p?.needs.cacheKeys ?? 'post-rope' : String(i)
      groups.set(key, [...(groups.get(key) ?? []), i])
    })
    const outcomes: SampleOutcome[] = new Array(policies.length)
    for (const members of groups.values()) {
      const prefill = share ? await this.model.prefillPrompt(ids, members.map((i) => policies[i]), { contextTokens, signal }) : undefined
      for (const i of members) {
        outcomes[i] = await this.generate(job, job.policies[i], policies[i], sample, prefill, signal)
        onOutcome?.(outcomes[i])
      }
    }
    return outcomes
  }

  /** every decoding cache of the job on the sample, one after another (same prompt, same process: comparable times) */
  private async runDiffusion(job: SampleJob, sample: PromptSample, onOutcome?: (o: SampleOutcome) => void, signal?: AbortSignal): Promise<SampleOutcome[]> {
    const out: SampleOutcome[] = []
    for (const spec of job.policies) {
      const o = await diffusionOutcome(this.model, spec, job.diffusion ?? {}, sample, { task: job.task, length: job.length, index: job.index, question: job.question ?? 'with' }, signal)
      onOutcome?.(o)
      out.push(o)
    }
    return out
  }

  private async generate(job: SampleJob, spec: string, policy: Policy | null, sample: PromptSample, prefill: SharedPrefill | undefined, signal?: AbortSignal): Promise<SampleOutcome> {
    // the answer, its end token, and two spare tokens, as train.py's evaluation decodes
    const gen = this.model.generate(sample.prompt_ids, {
      maxNewTokens: sample.answer_ids.length + 3, policy: policy ?? undefined, prefill, signal,
      contextTokens: job.question === 'after' ? sample.context_len : undefined,
    })
    const { text, stats } = await gen.result
    return {
      policy: spec,
      task: job.task,
      length: job.length,
      index: job.index,
      question: job.question ?? 'with',
      correct: strictCorrect(text, sample.answer),
      score: rulerScore(text, sample.expected),
      compressMs: stats.compressMs,
      continuation: text,
      kvBytes: stats.kvBytes.total,
      kvBytesFull: stats.kvBytesFull,
      prefillMs: stats.prefillMs,
      decodeMsPerToken: stats.decodeMsPerToken,
      kernels: this.model.kernels,
      kvDtype: this.model.kvDtype,
      newTokens: stats.newTokens,
      ...(stats.policy ? { policyStats: { ...stats.policy } } : {}),
    }
  }

  dispose(): void {
    this.model.dispose()
  }
}

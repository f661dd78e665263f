import { KV_DTYPES, type KVDtype } from '../cache/formats.js'
import { throwIfAborted } from '../model/abort.js'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { HfTokenizerAdapter } from '../model/tokenizer.js'
import { PromptBuilder } from './prompt.js'
import { haystackBooks } from './text.js'
import { loadWordList } from './words.js'
import { defaultBooksDir, defaultWordsFile } from './paths.js'
import { availableParallelism } from 'node:os'
import { nodeThreads } from '../node/threads.js'
import type { BackendName } from '../backend/backend.js'
import { createPolicy, parsePolicySpec, scoresTokensAtCreation } from '../policies/registry.js'
import { isPolicyConfig, policyFromSpec, type PolicyConfig } from '../policies/config.js'
import { readModelFacts } from './model-facts.js'
import { runInWorkers } from './pool.js'
import { autoWasmBuild } from '../backend/wasm/load.js'
import { aggregate, type EvalResult, type SampleOutcome } from './results.js'
import { EvalSession, type QuestionMode, type SampleJob } from './session.js'
import { readPromptsFile } from './prompts-file.js'
import { isTaskName, TASK_NAMES, type TaskName } from './tasks.js'
import { DIFFUSION_BLOCK_LENGTH, diffusionCacheFromSpec, type DiffusionDecoding } from './diffusion.js'
import { optionNamesProblem, shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'

export interface EvalOptions {
  /** model folder (Hugging Face layout) */
  model: string
  /** policy settings: typed (`snapkv({ budget: 0.25 })`) or spec strings (`full`, `NAME`, `NAME:key=value,...`) */
  policies: (string | PolicyConfig)[]
  tasks: string[]
  /** context lengths in tokens (prompt + answer + end token) */
  lengths: number[]
  /** samples per (policy, task, length) cell; 0 with `prompts` (the file gives them) */
  samples: number
  /**
   * true (default): each sample is prefilled once and every policy starts from a copy of that prefill;
   * false: each policy prefills the prompt itself (the per-policy path; the same outcomes, slower)
   */
  sharePrefill?: boolean
  /** index of the first sample of each cell (default 0): splits a long evaluation over processes; not with `prompts` */
  firstSample?: number
  seed?: number
  backend?: BackendName
  /** a .txt file or folder of them to build haystacks from; default: the held-out books */
  haystack?: string
  /**
   * .txt files or folders whose books together make the haystack, instead of `haystack`: tune a policy
   * on some books and confirm it on others (BENCHMARKS.md "UnionKV")
   */
  books?: string[]
  /** 'after': the query-agnostic loop, the context compressed without the question (default 'with') */
  question?: QuestionMode
  /** a JSONL file of samples (prompts-file.ts) to run instead of building them; tasks, lengths and samples then come from it */
  prompts?: string
  /**
   * the KV cache's element type for every generation: 'float32' (default) or 'float16' (half the bytes,
   * llama.cpp's f16 cache type); results carry it as `kvDtype`
   */
  kvDtype?: KVDtype
  /** worker threads, each with its own model running samples in parallel; default: one per available core, at most one per sample */
  workers?: number
  /**
   * lengths up to this many tokens, past max_position_embeddings (loadModel's contextLimit); without it a
   * longer length is refused before any cell runs
   */
  contextLimit?: number
  /** kernel threads inside each worker's model, 1 to 256; default: the cores the workers leave (KVKIT_THREADS or the cores, / workers, at least 1) */
  threads?: number
  /**
   * A diffusion model's decoding (genLength, blockLength, steps, stopAtEos; see DiffusionDecoding); its
   * policies are then `full` (recompute every token every step) and `elastic-cache[:...]`
   */
  diffusion?: DiffusionDecoding
  /**
   * stops the run: on one thread between a sample's prefill chunks and decode steps, on worker threads at
   * once (they are terminated); evaluate rejects with the signal's reason and returns no partial results
   * (onOutcome has heard each finished sample)
   */
  signal?: AbortSignal
  onProgress?: (p: EvalProgress) => void
  /** every sample's outcome, as it arrives (continuations, for inspection) */
  onOutcome?: (o: SampleOutcome) => void
}

export interface EvalProgress {
  done: number
  total: number
  elapsedMs: number
  last: SampleOutcome
}

/** A value as an error message shows it (shownValue: numbers as written, NaN not JSON's null, anything else as JSON). */
export const showValue = shownValue

export { EvalArgumentError }

export const DEFAULT_SEED = 1

/** every option evaluate takes; the record's type makes a new EvalOptions field fail to compile until listed */
const EVAL_OPTION_SET: Record<keyof EvalOptions, true> = {
  model: true, policies: true, tasks: true, lengths: true, samples: true, sharePrefill: true, firstSample: true, seed: true,
  backend: true, haystack: true, books: true, question: true, prompts: true, kvDtype: true, workers: true, contextLimit: true,
  threads: true, diffusion: true, signal: true, onProgress: true, onOutcome: true,
}

/** Checks every argument before any model is loaded; returns the jobs in cell order. */
export function planEvaluation(opts: EvalOptions): { jobs: SampleJob[]; cells: { policy: string; task: TaskName; length: number }[] } {
  const fail = (msg: string): never => { throw new EvalArgumentError(msg) }
  if (typeof opts !== 'object' || opts === null) fail(`evaluate needs an options object, got ${JSON.stringify(opts)}`)
  // a misspelt option (sampels, haystak) was ignored and the run went ahead on the default
  const namesProblem = optionNamesProblem(opts, EVAL_OPTION_SET)
  if (namesProblem !== undefined) fail(namesProblem)
  // a callback that is not one threw a TypeError at the first finished sample, after its work
  for (const key of ['onProgress', 'onOutcome'] as const)
    if (opts[key] !== undefined && typeof opts[key] !== 'function') fail(`${key} must be a function, got ${showValue(opts[key])}`)
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) fail(`signal must be an AbortSignal, got ${showValue(opts.signal)}`)
  // a loaded model would read as the folder "[object Object]": each worker loads the model from its folder
  if (typeof opts.model !== 'string') fail(`model must be the model's folder (a path string; each worker loads it), got ${opts.model === null ? 'null' : typeof opts.model}`)
  // a string where a list belongs would be read letter by letter ("unknown task "p"") or not at all
  for (const key of ['policies', 'tasks', 'lengths'] as const)
    if (opts[key] !== undefined && !Array.isArray(opts[key])) fail(`${key} must be a list, got ${showValue(opts[key])}`)
  if (!Array.isArray(opts.policies)) fail('no policy given (use --policy full, --policy snapkv:budget=0.25, ...)')
  const specs = opts.policies.map((p) => (isPolicyConfig(p) ? p.spec : p))
  if (specs.length === 0) fail('no policy given (use --policy full, --policy snapkv:budget=0.25, ...)')
  // as policyFromSpec writes it: "snapkv:budget=0.25 " and "SnapKV:budget=0.25" are one setting
  onlyOnce('policy', specs.map((s) => { try { return policyFromSpec(s).spec } catch { return s } }), fail)
  if (opts.question !== undefined && opts.question !== 'with' && opts.question !== 'after') fail(`question must be "with" or "after", got ${JSON.stringify(opts.question)}`)
  if (opts.kvDtype !== undefined && !KV_DTYPES.includes(opts.kvDtype)) fail(`kvDtype must be one of ${KV_DTYPES.join(', ')}, got ${JSON.stringify(opts.kvDtype)}`)
  if (opts.prompts !== undefined) return planFromPrompts(opts, specs, fail)
  if (!opts.tasks?.length) fail(`no task given (tasks: ${TASK_NAMES.join(', ')})`)
  for (const t of opts.tasks) if (!isTaskName(t)) fail(`unknown task ${JSON.stringify(t)} (tasks: ${TASK_NAMES.join(', ')})`)
  onlyOnce('task', opts.tasks, fail)
  if (!opts.lengths?.length) fail('no length given')
  onlyOnce('length', opts.lengths, fail)
  if (!Number.isInteger(opts.samples) || opts.samples < 1) fail(`samples must be a positive integer, got ${showValue(opts.samples)}`)
  const seed = opts.seed ?? DEFAULT_SEED
  if (!Number.isInteger(seed) || seed < 0) fail(`seed must be a non-negative integer, got ${showValue(seed)}`)
  if (opts.firstSample !== undefined && (!Number.isInteger(opts.firstSample) || opts.firstSample < 0)) fail(`firstSample must be a non-negative integer, got ${showValue(opts.firstSample)}`)
  if (opts.workers !== undefined && (!Number.isInteger(opts.workers) || opts.workers < 1)) fail(`workers must be a positive integer, got ${showValue(opts.workers)}`)
  // loadModel's own limit, checked here so that a bad count stops the run before the workers load their models
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 256)) fail(`threads must be an integer in [1, 256], got ${showValue(opts.threads)}`)
  if (opts.haystack !== undefined && typeof opts.haystack !== 'string') fail(`haystack must be a .txt file or folder path, got ${showValue(opts.haystack)}`)
  if (opts.haystack !== undefined && !existsSync(opts.haystack)) fail(`haystack not found: ${opts.haystack}`)
  if (opts.books !== undefined) {
    if (opts.haystack !== undefined) fail('give the haystack either as haystack (one file or folder) or as books (a list), not both')
    // a string was walked letter by letter ("book not found: x" for books: 'x.txt')
    if (!Array.isArray(opts.books) || !opts.books.every((b) => typeof b === 'string')) fail(`books must be an array of .txt file or folder paths, got ${showValue(opts.books)}`)
    if (opts.books.length === 0) fail('books is empty: name at least one .txt file or folder')
    for (const b of opts.books) if (!existsSync(b)) fail(`book not found: ${b}`)
  }
  let facts
  try {
    facts = readModelFacts(opts.model)
  } catch (e) {
    return fail((e as Error).message)
  }
  if (opts.contextLimit !== undefined && !(Number.isInteger(opts.contextLimit) && opts.contextLimit >= 2)) fail(`contextLimit must be an integer of at least 2 tokens, got ${showValue(opts.contextLimit)}`)
  const limit = opts.contextLimit ?? facts.maxPositions
  for (const L of opts.lengths) {
    if (!Number.isInteger(L) || L < 128) fail(`length must be an integer of at least 128 tokens, got ${showValue(L)}`)
    if (L > limit) fail(`length ${L} is beyond what the model supports (${opts.contextLimit === undefined ? `max_position_embeddings ${facts.maxPositions}; --context-limit lifts it` : `--context-limit ${limit}`})`)
  }
  if (facts.diffusion) checkDiffusion(specs, opts.diffusion ?? {}, fail, opts.kvDtype)
  else checkPolicies(specs, facts.shape, fail, opts.diffusion, opts.question)
  const cells = specs.flatMap((policy) => opts.tasks.flatMap((task) => opts.lengths.map((length) => ({ policy, task: task as TaskName, length }))))
  const sharePrefill = opts.sharePrefill ?? true
  const first = opts.firstSample ?? 0
  // one job per sample, carrying every policy: the prefill is shared inside the job; sample-major, so
  // that a run stopped early (a time-boxed sweep) leaves every task with as many samples as the others
  const jobs = Array.from({ length: opts.samples }, (_, i) => opts.tasks.flatMap((task) => opts.lengths.map((length) =>
    ({ policies: specs, sharePrefill, task: task as TaskName, length, index: first + i, seed, question: opts.question, ...(facts.diffusion ? { diffusion: opts.diffusion ?? {} } : {}) })))).flat()
  return { jobs, cells }
}

/**
 * Refuses a value given twice: a policy, task or length given twice would run its cells twice, and the
 * two runs would count as one cell (printed twice) with twice the samples asked for.
 */
function onlyOnce<T>(what: string, values: readonly T[], fail: (m: string) => never): void {
  // a Set, not indexOf: indexOf never finds NaN, so a single NaN length would read as given twice
  const seen = new Set<T>()
  const twice = values.find((v) => seen.size === seen.add(v).size)
  if (twice !== undefined) fail(`${what} ${showValue(twice)} is given twice`)
}

/** a diffusion model's decoding caches and options, before any model loads */
function checkDiffusion(specs: string[], d: DiffusionDecoding, fail: (m: string) => never, kvDtype?: string): void {
  // the diffusion decode keeps float32 K/V: another type asked for would be ignored, not honoured
  if (kvDtype !== undefined && kvDtype !== 'float32') fail(`kvDtype ${JSON.stringify(kvDtype)}: a diffusion model's decode keeps float32 K/V`)
  for (const k of ['genLength', 'blockLength', 'steps'] as const) {
    const v = d[k]
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) fail(`diffusion ${k} must be a positive integer, got ${v}`)
  }
  const B = d.blockLength ?? DIFFUSION_BLOCK_LENGTH
  for (const spec of specs) {
    let cache
    try {
      cache = diffusionCacheFromSpec(spec)
    } catch (e) {
      return fail((e as Error).message)
    }
    // what diffusionGenerate would refuse in every sample, refused before the model loads
    if (cache !== 'none' && cache.windowLength !== undefined && cache.windowLength < B)
      fail(`${spec}: windowLength ${cache.windowLength} is shorter than blockLength ${B}: the window must cover the block being decoded`)
  }
  // without genLength each sample's answer sets it, and a fixed step count would fit some samples only
  if (d.genLength === undefined && d.steps !== undefined) fail(`diffusion steps ${d.steps} needs genLength too: without it each sample's answer length sets genLength, and ${d.steps} steps would not fit every sample's blocks`)
  if (d.genLength === undefined) return
  if (d.genLength % B !== 0) fail(`diffusion genLength ${d.genLength} is not a multiple of blockLength ${B}`)
  const blocks = d.genLength / B
  if (d.steps !== undefined && d.steps % blocks !== 0) fail(`diffusion steps ${d.steps} is not a multiple of the number of blocks ${blocks} (genLength ${d.genLength} / blockLength ${B})`)
  if (d.steps !== undefined && d.steps / blocks > B) fail(`diffusion steps ${d.steps} give ${d.steps / blocks} steps per block, more than blockLength ${B}: some steps would unmask nothing`)
}

function checkPolicies(specs: string[], shape: ReturnType<typeof readModelFacts>['shape'], fail: (m: string) => never, diffusion?: DiffusionDecoding, question?: QuestionMode): void {
  const given = Object.entries(diffusion ?? {}).filter(([, v]) => v !== undefined).map(([k]) => k)
  if (given.length) fail(`diffusion decoding options (${given.join(', ')}) are for a masked diffusion LM; this model is causal`)
  for (const spec of specs) {
    let policy
    try {
      parsePolicySpec(spec)
      policy = createPolicy(spec, shape)
    } catch (e) {
      fail((e as Error).message)
    }
    // as generate() refuses it: the question's tokens would reach such a policy without hidden states
    if (question === 'after' && scoresTokensAtCreation(policy))
      fail(`policy ${spec} scores every token from its hidden state when it is created, which the question-after loop does not capture for the question; use --question with`)
  }
}

/** --prompts: the cells are (policy, task, length) of the file's samples; nothing else may choose samples */
function planFromPrompts(opts: EvalOptions, specs: string[], fail: (m: string) => never): ReturnType<typeof planEvaluation> {
  if (opts.tasks?.length || opts.lengths?.length || opts.haystack !== undefined || opts.books !== undefined || opts.seed !== undefined)
    fail('--prompts gives the samples: leave out --task, --length, --seed, --haystack and --books')
  // the file's every sample runs once: a count or a first index would be ignored (0 is the CLI's "not given")
  const counts = [...(opts.samples !== undefined && opts.samples !== 0 ? [`samples ${showValue(opts.samples)}`] : []), ...(opts.firstSample !== undefined ? [`firstSample ${showValue(opts.firstSample)}`] : [])]
  if (counts.length) fail(`--prompts gives the samples (each sample of the file, once): leave out ${counts.join(', ')} (samples 0 and no firstSample)`)
  let facts
  try {
    facts = readModelFacts(opts.model)
  } catch (e) {
    return fail((e as Error).message)
  }
  let samples
  try {
    samples = readPromptsFile(opts.prompts!, facts.vocab)
  } catch (e) {
    return fail((e as Error).message)
  }
  const limit = opts.contextLimit ?? facts.maxPositions
  for (const s of samples) if (s.prompt_ids.length + s.answer_ids.length + 3 > limit) fail(`${opts.prompts}: a ${s.task} sample of ${s.prompt_ids.length} tokens is beyond what the model supports (${opts.contextLimit === undefined ? `max_position_embeddings ${limit}` : `--context-limit ${limit}`})`)
  if (facts.diffusion) checkDiffusion(specs, opts.diffusion ?? {}, fail, opts.kvDtype)
  else checkPolicies(specs, facts.shape, fail, opts.diffusion, opts.question)
  const keys = [...new Set(samples.map((s) => `${s.task}\u0000${s.length}`))]
  const cells = specs.flatMap((policy) => keys.map((k) => {
    const [task, length] = k.split('\u0000')
    return { policy, task: task as TaskName, length: Number(length) }
  }))
  const sharePrefill = opts.sharePrefill ?? true
  const jobs = samples.map((s) => ({ policies: specs, sharePrefill, task: s.task, length: s.length, index: s.index, seed: 0, question: opts.question, sample: s, ...(facts.diffusion ? { diffusion: opts.diffusion ?? {} } : {}) }))
  return { jobs, cells }
}

/**
 * Builds the first prompt of every (task, length) with the model's tokenizer and the haystack, so a
 * haystack that cannot fill a length, or a length too short for a task, fails before any cell runs.
 */
export function checkPrompts(opts: EvalOptions): void {
  const fail = (msg: string): never => { throw new EvalArgumentError(msg) }
  let builder: PromptBuilder
  try {
    const tokenizerJson = JSON.parse(readFileSync(join(opts.model, 'tokenizer.json'), 'utf8'))
    const cfg = JSON.parse(readFileSync(join(opts.model, 'config.json'), 'utf8')) as { bos_token_id?: number; eos_token_id?: number | number[] }
    const eos = Array.isArray(cfg.eos_token_id) ? cfg.eos_token_id[0] : cfg.eos_token_id
    builder = new PromptBuilder({
      tokenizer: new HfTokenizerAdapter(tokenizerJson),
      bosId: cfg.bos_token_id ?? eos ?? 0,
      books: haystackBooks(defaultBooksDir(), opts.haystack, opts.books),
      words: loadWordList(defaultWordsFile()),
    })
  } catch (e) {
    return fail((e as Error).message)
  }
  for (const task of opts.tasks) {
    for (const length of opts.lengths) {
      try {
        builder.build(task as TaskName, length, opts.seed ?? DEFAULT_SEED, 0)
      } catch (e) {
        fail((e as Error).message)
      }
    }
  }
}

/**
 * Runs every policy on every task and length, `samples` prompts a cell, and averages each cell.
 * The samples of a cell are the same for every policy (and every run with the same seed), so the
 * policies are compared on identical prompts; each prompt is prefilled once and shared by the policies
 * (see `sharePrefill`), with the outcomes of a prefill per policy.
 */
export async function evaluate(opts: EvalOptions): Promise<EvalResult[]> {
  const { jobs, cells } = planEvaluation(opts)
  checkPrompts(opts)
  // samples in parallel first (no synchronisation at all), kernel threads inside a sample for the cores left
  const workers = Math.max(1, Math.min(opts.workers ?? availableParallelism(), jobs.length))
  let threads = opts.threads
  try {
    threads ??= Math.max(1, Math.floor(nodeThreads() / workers))
  } catch (e) {
    throw new EvalArgumentError((e as Error).message) // a bad KVKIT_THREADS, before any worker starts
  }
  const total = jobs.reduce((a, j) => a + j.policies.length, 0)
  const started = performance.now()
  const outcomes: SampleOutcome[] = []
  const record = (o: SampleOutcome): void => {
    outcomes.push(o)
    opts.onOutcome?.(o)
    opts.onProgress?.({ done: outcomes.length, total, elapsedMs: performance.now() - started, last: o })
  }
  const session = { model: opts.model, backend: opts.backend, haystack: opts.haystack, books: opts.books, contextLimit: opts.contextLimit, kvDtype: opts.kvDtype, threads }
  const signal = opts.signal
  const aborted = () => throwIfAborted(signal, 'evaluation')
  aborted()
  if (workers <= 1) {
    // the load (seconds for a large model) is abortable too: an abort during it does not wait for it
    const s = await EvalSession.open(session, signal)
    try {
      for (const job of jobs) {
        aborted()
        await s.run(job, record, signal)
      }
    } finally {
      s.dispose()
    }
  } else {
    // every worker runs the build 'auto' picks here: each measuring for itself could pick differently
    const wasm = opts.backend !== 'reference' && opts.backend !== 'webgpu'
    await runInWorkers(workers, wasm ? { ...session, relaxed: (await autoWasmBuild()) === 'relaxed' } : session, jobs, record, signal)
  }
  return aggregate(outcomes, cells)
}

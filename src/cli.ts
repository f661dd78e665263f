import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { createBackend } from './backend/index.js'
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { BackendName } from './backend/backend.js'
import { KV_DTYPES, type KVDtype } from './cache/formats.js'
import { createPolicy, listPolicies } from './policies/registry.js'
import { loadModel } from './node/load.js'
import { checkPrompts, evaluate, planEvaluation, EvalArgumentError, DEFAULT_SEED, type EvalOptions, type EvalProgress } from './eval/runner.js'
import { aggregate, type SampleOutcome } from './eval/results.js'
import { EvalSession } from './eval/session.js'
import { writePromptsFile } from './eval/prompts-file.js'
import type { TaskName } from './eval/tasks.js'
import type { TruncMode } from './mpc/engine.js'
import { formatBytes, formatKept, formatTable } from './eval/format.js'
import { writeReport } from './eval/report.js'
import { writeJson } from './eval/json.js'
import { MAIN_AFTER_POLICIES, MAIN_AFTER_REPORT, MAIN_KV_DTYPE, MAIN_LENGTHS, MAIN_POLICIES, MAIN_REPORT_DIR, MAIN_SAMPLES, MAIN_SEED, MAIN_TASKS } from './eval/main-job.js'
import { defaultModelDir } from './eval/paths.js'
import { readModelFacts } from './eval/model-facts.js'
import { diffusionCacheFromSpec } from './eval/diffusion.js'
import { perplexity } from './eval/perplexity.js'
import { loadBooks } from './eval/text.js'
import { defaultBooksDir, packageRoot } from './eval/paths.js'
import { servePlayground } from './node/playground.js'
import { serve, type ServeOptions } from './serve/http.js'
import { BEARER_TOKEN_RULE, isBearerToken, notBearerAt } from './serve/app.js'
import { ChatTemplate } from './serve/chat-template.js'
import type { QueueOrder } from './serve/scheduler.js'

const USAGE = `usage:
  kvkit eval --model DIR --policy SPEC [--policy SPEC ...] (--task A,B --length 1024,4096 --samples N | --prompts FILE)
             [--question with|after] [--seed S] [--backend wasm|webgpu|reference|auto] [--workers N] [--threads N]
             [--haystack FILE|DIR | --books FILE|DIR,FILE|DIR,...] [--kv-dtype float32|float16]
             [--context-limit N]  (lengths past max_position_embeddings, up to N tokens: an explicit choice)
             [--json FILE] [--report DIR]
             a diffusion model (Dream): --policy full | elastic-cache[:gamma=0.9,windowLength=N,trackNum=1,blockCaching=true,refreshFrom=next-layer]
             [--gen-length N] [--block-length 8] [--steps N]  (iterative unmasking; defaults: answer + 3 rounded up, 8, gen-length)
  kvkit prompts --model DIR --task A,B --length 4096 --samples N [--seed S] [--haystack FILE|DIR | --books A,B,...] --out FILE
             (writes the eval's samples as JSONL, for --prompts here and for a peer library)
  kvkit generate --model DIR [--policy SPEC] (--prompt TEXT | --prompt-file FILE) [--max-new-tokens N] [--backend B]
             [--kv-dtype float32|float16] [--threads N]
             a diffusion model: --policy full | elastic-cache[:...], --max-new-tokens is genLength, [--block-length N] [--steps N]
  kvkit perplexity --model DIR [--length 2048] [--samples 16] [--seed S] [--haystack FILE|DIR] [--backend B]
             [--kv-dtype float32|float16] [--threads N]
  kvkit serve --model DIR [--port 8080] [--host 127.0.0.1] [--api-key KEY] [--policy SPEC] [--kv-budget TOKENS]
             [--cache-tokens TOKENS] [--parallel N] [--max-tokens N] [--model-id NAME] [--backend B] [--edit-reuse]
             [--scheduler fcfs|kvshare|program] [--aging-ms MS] [--blend on|off] [--blend-ratio R] [--threads N]
             (an OpenAI-compatible server: /v1/models, /v1/chat/completions, /v1/completions; KV reused across
             requests through the prefix cache, and with --edit-reuse by KVShare for prompts that edit an earlier
             one; a chat request's documents by CacheBlend (--blend, default on; --blend-ratio, default 0.15),
             or with their sources by Graph-KV; --scheduler kvshare starts waiting requests by expected cache hit rate with aging,
             program by agent program first come first served (Continuum; a request's program_id);
             KVKIT_API_KEY sets --api-key; Ctrl-C stops it)
  kvkit policies
  kvkit mpc [--model DIR] [--length 512] [--method mpcache|full] [--trunc one-round|exact-one-round|exact|local] [--seed S]
             (a passkey query with the attention over the KV cache secret-shared between two parties)
  kvkit main        (npm start: the key policies at two budgets on the bundled model, report/index.html)
  kvkit playground [--port 8020] [--model DIR] [--page DIR]
             (serves the browser playground, npm run build:playground or a page built to DIR, with the model
             in DIR or the bundled one; Ctrl-C stops it)
policy SPEC: full | NAME | NAME:key=value,key=value   (kvkit policies lists them)
--kv-dtype: the KV cache's element type (llama.cpp's --cache-type-k/-v; f32 and f16 are accepted too)`

/** A bad command line: one line on stderr, exit code 2. */
class UsageError extends Error {}

const BACKENDS: BackendName[] = ['wasm', 'webgpu', 'auto', 'reference']

type Values = { [name: string]: string | string[] | boolean | undefined }

/**
 * `--port -1` as `--port=-1`: parseArgs takes a value that starts with a dash for an option of its own
 * and refuses it as "ambiguous", so the negative number would never reach the check that names it
 */
function joinNegativeValues(args: string[], options: ParseArgsConfig['options']): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') && !args[i].includes('=') ? args[i].slice(2) : undefined
    if (name !== undefined && options?.[name]?.type === 'string' && /^-[\d.]/.test(args[i + 1] ?? '')) out.push(`${args[i]}=${args[++i]}`)
    else out.push(args[i])
  }
  return out
}

function parse(args: string[], options: ParseArgsConfig['options']): { values: Values } {
  let parsed
  try {
    parsed = parseArgs({ args: joinNegativeValues(args, options), options, strict: true, allowPositionals: false, tokens: true })
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0])
  }
  // parseArgs keeps the last of a repeated single-value option: `generate --policy a --policy b` would
  // run b alone, where eval's --policy runs both
  const seen = new Set<string>()
  for (const t of parsed.tokens as { kind: string; name?: string }[]) {
    if (t.kind !== 'option' || t.name === undefined || options?.[t.name]?.multiple) continue
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given twice (it takes one value)`)
    seen.add(t.name)
  }
  return { values: parsed.values as Values }
}

function int(name: string, raw: string | undefined, fallback?: number): number {
  if (raw === undefined) {
    if (fallback === undefined) throw new UsageError(`--${name} is required`)
    return fallback
  }
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(raw)}`)
  // past 2^53 the number read is not the one typed (a seed would silently change; a count would fail late)
  if (!Number.isSafeInteger(Number(raw))) throw new UsageError(`--${name} must be at most ${Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

function list(name: string, raw: string | undefined): string[] {
  if (raw === undefined) throw new UsageError(`--${name} is required`)
  const items = raw.split(',').map((s) => s.trim())
  if (items.every((s) => s === '')) throw new UsageError(`--${name} is empty`)
  // an empty item (passkey,,vt or a trailing comma) was dropped, silently: a typo ran a smaller grid
  const blank = items.indexOf('')
  if (blank >= 0) throw new UsageError(`--${name} ${JSON.stringify(raw)}: item ${blank + 1} of ${items.length} is empty`)
  return items
}

/** --kv-dtype: float32 (default) or float16, or llama.cpp's names for them, f32 and f16 */
function kvDtype(raw: string | undefined): KVDtype | undefined {
  if (raw === undefined) return undefined
  const name = ({ f32: 'float32', f16: 'float16' } as Record<string, string>)[raw] ?? raw
  if (!(KV_DTYPES as string[]).includes(name)) throw new UsageError(`--kv-dtype must be float32 or float16 (or f32, f16), got ${JSON.stringify(raw)}`)
  return name as KVDtype
}

function backend(raw: string | undefined): BackendName {
  if (raw === undefined) return 'auto'
  if (!(BACKENDS as string[]).includes(raw)) throw new UsageError(`unknown backend ${JSON.stringify(raw)} (backends: ${BACKENDS.join(', ')})`)
  return raw as BackendName
}

/** a backend this build and machine can start (webgpu needs a GPU adapter), found before any work */
async function availableBackend(raw: string | undefined): Promise<BackendName> {
  const name = backend(raw)
  if (name === 'webgpu') {
    try {
      // opened to see that an adapter exists, and closed again so that nothing outlives the check
      const probe = await createBackend(name)
      probe.destroy()
    } catch (e) {
      throw new UsageError(`--backend webgpu is not available: ${(e as Error).message}`)
    }
  }
  return name
}

/** an output file: a non-empty path whose folder can be created and the file written, checked before any work */
function outputFile(flag: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined
  if (raw.trim() === '') throw new UsageError(`--${flag} needs a file name, got ""`)
  try {
    mkdirSync(dirname(resolve(raw)), { recursive: true })
    if (existsSync(raw) && !statSync(raw).isFile()) throw new Error('it exists and is not a regular file')
    accessSync(dirname(resolve(raw)), constants.W_OK)
    if (existsSync(raw)) accessSync(raw, constants.W_OK)
  } catch (e) {
    throw new UsageError(`--${flag} ${raw} cannot be written: ${(e as Error).message}`)
  }
  return raw
}

/** refuses an output file that is one of the run's inputs (`--prompts`, `--haystack`, one of `--books`): it would be written over */
function notAnInput(flag: string, out: string | undefined, inputs: Record<string, string | string[] | boolean | undefined>): void {
  if (out === undefined) return
  for (const [name, value] of Object.entries(inputs))
    for (const input of typeof value === 'string' ? [value] : Array.isArray(value) ? value : [])
      if (resolve(input) === resolve(out)) throw new UsageError(`--${flag} ${out} is the --${name} file ${input}: the output would overwrite what the run reads`)
}

/** an output folder, created (or found writable) before any work */
function outputDir(flag: string, raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined
  if (raw.trim() === '') throw new UsageError(`--${flag} needs a folder name, got ""`)
  try {
    // mkdir's own word for a file in the way is "EEXIST: file already exists", which reads as success
    if (existsSync(raw) && !statSync(raw).isDirectory()) throw new Error('it exists and is not a folder')
    mkdirSync(raw, { recursive: true })
    accessSync(raw, constants.W_OK)
  } catch (e) {
    throw new UsageError(`--${flag} ${raw} cannot be written: ${(e as Error).message}`)
  }
  return raw
}

/** a count that must be at least 1 */
function positive(name: string, raw: string | undefined, fallback?: number): number {
  const n = int(name, raw, fallback)
  if (n < 1) throw new UsageError(`--${name} must be at least 1, got ${n}`)
  return n
}

/** --threads N: the model's kernel threads, 1 to 256 (loadModel's `threads`); undefined: its default (KVKIT_THREADS or the cores) */
function kernelThreads(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isInteger(n) || n < 1 || n > 256) throw new UsageError(`--threads must be an integer in [1, 256], got ${JSON.stringify(raw)}`)
  return n
}

/** runs f, turning an EvalArgumentError into a usage error; other errors pass */
function usageOf<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    if (e instanceof EvalArgumentError) throw new UsageError(e.message)
    throw e
  }
}

/** runs f, turning its error into a usage error (a bad argument, exit code 2) */
function usage<T>(f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
}

/** progress on stderr: a rewritten line on a terminal, a line every ~10% otherwise */
function progressPrinter(): (p: EvalProgress) => void {
  const tty = process.stderr.isTTY
  let lastShown = 0
  return (p) => {
    const eta = p.done < p.total ? ` eta ${Math.round(((p.elapsedMs / p.done) * (p.total - p.done)) / 1000)}s` : ''
    const line = `[${p.done}/${p.total}] ${p.last.policy} ${p.last.task}@${p.last.length} ${(p.elapsedMs / 1000).toFixed(0)}s${eta}`
    if (tty) process.stderr.write(`\r${line}\x1b[K${p.done === p.total ? '\n' : ''}`)
    else if (p.done === p.total || p.done - lastShown >= Math.max(1, Math.ceil(p.total / 10))) {
      lastShown = p.done
      process.stderr.write(line + '\n')
    }
  }
}

async function runEval(opts: EvalOptions, out: { json?: string; report?: string; command: string }): Promise<void> {
  const started = Date.now()
  // bad arguments (tasks, lengths, haystacks, specs) end here, before any cell runs
  const { cells } = usageOf(() => planEvaluation(opts))
  usageOf(() => checkPrompts(opts))
  // the JSON holds every finished cell as soon as it finishes: a run stopped later loses nothing done
  const outcomes: SampleOutcome[] = []
  const finished = (c: (typeof cells)[number]) => outcomes.filter((o) => o.policy === c.policy && o.task === c.task && o.length === c.length).length === opts.samples
  // an empty file from the start shows where results will go, but a file the user already has is left
  // alone until the first cell finishes: a run that fails before then (weights that do not load) keeps it
  if (out.json && !existsSync(out.json)) writeJson(out.json, [])
  const progress = progressPrinter()
  const results = await evaluate({
    ...opts,
    onProgress: progress,
    onOutcome: (o) => {
      outcomes.push(o)
      const cell = cells.find((c) => c.policy === o.policy && c.task === o.task && c.length === o.length)!
      if (out.json && finished(cell)) writeJson(out.json, aggregate(outcomes, cells.filter(finished)))
    },
  })
  process.stdout.write(formatTable(results) + '\n')
  if (out.json) {
    writeJson(out.json, results)
    process.stdout.write(`results: ${out.json}\n`)
  }
  if (out.report) {
    const file = writeReport(out.report, results, { model: opts.model, backend: opts.backend, seed: opts.seed, date: new Date().toISOString(), command: out.command })
    process.stdout.write(`report: ${file}\n`)
  }
  process.stderr.write(`done in ${((Date.now() - started) / 1000).toFixed(1)}s\n`)
}

async function cmdEval(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, policy: { type: 'string', multiple: true }, task: { type: 'string' },
    length: { type: 'string' }, samples: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' },
    workers: { type: 'string' }, haystack: { type: 'string' }, books: { type: 'string' }, json: { type: 'string' }, report: { type: 'string' },
    question: { type: 'string' }, prompts: { type: 'string' }, 'kv-dtype': { type: 'string' }, 'context-limit': { type: 'string' }, threads: { type: 'string' },
    'gen-length': { type: 'string' }, 'block-length': { type: 'string' }, steps: { type: 'string' },
  })
  if (v.model === undefined) throw new UsageError('--model is required')
  const optional = (name: string) => (v[name] === undefined ? undefined : positive(name, v[name] as string))
  const diffusion = { genLength: optional('gen-length'), blockLength: optional('block-length'), steps: optional('steps') }
  const policies = (v.policy as string[] | undefined) ?? []
  if (policies.length === 0) throw new UsageError('--policy is required (full, NAME or NAME:key=value,...)')
  const question = v.question as string | undefined
  if (question !== undefined && question !== 'with' && question !== 'after') throw new UsageError(`--question must be with or after, got ${JSON.stringify(question)}`)
  const fromFile = v.prompts !== undefined
  if (fromFile && v.samples !== undefined) throw new UsageError('--prompts gives the samples: leave out --samples')
  // the first finished cell would overwrite the samples or the text the run reads
  notAnInput('json', v.json as string | undefined, { prompts: v.prompts, haystack: v.haystack, books: v.books === undefined ? undefined : list('books', v.books as string) })
  await runEval({
    model: v.model as string,
    policies,
    prompts: v.prompts as string | undefined,
    question: question as EvalOptions['question'],
    tasks: fromFile && v.task === undefined ? [] : list('task', v.task as string | undefined),
    lengths: fromFile && v.length === undefined ? [] : list('length', v.length as string | undefined).map((s) => int('length', s)),
    samples: fromFile ? 0 : positive('samples', v.samples as string | undefined),
    seed: fromFile && v.seed === undefined ? undefined : int('seed', v.seed as string | undefined, DEFAULT_SEED),
    backend: await availableBackend(v.backend as string | undefined),
    workers: v.workers === undefined ? undefined : positive('workers', v.workers as string),
    threads: v.threads === undefined ? undefined : positive('threads', v.threads as string),
    haystack: v.haystack as string | undefined,
    books: v.books === undefined ? undefined : list('books', v.books as string),
    kvDtype: kvDtype(v['kv-dtype'] as string | undefined),
    contextLimit: v['context-limit'] === undefined ? undefined : positive('context-limit', v['context-limit'] as string),
    diffusion,
  }, { json: outputFile('json', v.json as string | undefined), report: outputDir('report', v.report as string | undefined), command: 'kvkit eval ' + args.join(' ') })
}

async function cmdPrompts(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, task: { type: 'string' }, length: { type: 'string' }, samples: { type: 'string' },
    seed: { type: 'string' }, haystack: { type: 'string' }, books: { type: 'string' }, out: { type: 'string' },
  })
  if (v.model === undefined) throw new UsageError('--model is required')
  const books = v.books === undefined ? undefined : list('books', v.books as string)
  if (v.out === undefined) throw new UsageError('--out is required (the JSONL file to write)')
  // checked before the samples are built, as eval's --json
  const outFile = outputFile('out', v.out as string)!
  // the samples are built from the haystack, then written over it: the user's text would be gone
  notAnInput('out', outFile, { haystack: v.haystack, books })
  const tasks = list('task', v.task as string | undefined)
  const lengths = list('length', v.length as string | undefined).map((s) => int('length', s))
  const samples = positive('samples', v.samples as string | undefined)
  const seed = int('seed', v.seed as string | undefined, DEFAULT_SEED)
  // the same checks as eval's, before the model loads
  try {
    planEvaluation({ model: v.model as string, policies: ['full'], tasks, lengths, samples, seed, haystack: v.haystack as string | undefined, books })
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const session = await EvalSession.open({ model: v.model as string, haystack: v.haystack as string | undefined, books })
  try {
    const out = tasks.flatMap((t) => lengths.flatMap((L) => Array.from({ length: samples }, (_, i) => session.sample(t as TaskName, L, seed, i))))
    writePromptsFile(outFile, out)
    process.stdout.write(`${out.length} samples: ${outFile}\n`)
  } finally {
    session.dispose()
  }
}

async function cmdMain(args: string[]): Promise<void> {
  const { values: v } = parse(args, { backend: { type: 'string' }, workers: { type: 'string' } })
  // checked before the banner: a bad argument is then the one line on stderr, as for every command
  const workers = v.workers === undefined ? undefined : positive('workers', v.workers as string)
  const be = await availableBackend(v.backend as string | undefined)
  process.stderr.write(`kvkit main: ${MAIN_POLICIES.length} policy settings with the question in the prompt and ${MAIN_AFTER_POLICIES.length} with it after the context x ${MAIN_TASKS.join(',')} at ${MAIN_LENGTHS.join(',')} tokens, ${MAIN_SAMPLES} samples each, ${MAIN_KV_DTYPE} KV\n`)
  const common = { model: defaultModelDir(), tasks: MAIN_TASKS, lengths: MAIN_LENGTHS, samples: MAIN_SAMPLES, seed: MAIN_SEED, backend: be, workers, kvDtype: MAIN_KV_DTYPE } as const
  // both loops are planned (and bad settings refused) and both report folders made before either runs:
  // a folder that cannot be written would otherwise fail after the first loop's minutes
  for (const [policies, question] of [[MAIN_POLICIES, 'with'], [MAIN_AFTER_POLICIES, 'after']] as const) usageOf(() => planEvaluation({ ...common, policies, question }))
  const withReport = outputDir('report', resolve(MAIN_REPORT_DIR))
  const afterReport = outputDir('report', join(resolve(MAIN_REPORT_DIR), MAIN_AFTER_REPORT))
  process.stdout.write('question in the prompt (kvpress\'s query-aware loop):\n')
  await runEval({ ...common, policies: MAIN_POLICIES, question: 'with' }, { report: withReport, command: 'kvkit main' })
  process.stdout.write('\nquestion after the compressed context (a document compressed for reuse):\n')
  await runEval({ ...common, policies: MAIN_AFTER_POLICIES, question: 'after' }, { report: afterReport, command: 'kvkit main (question after)' })
}

async function cmdGenerate(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, policy: { type: 'string' }, prompt: { type: 'string' }, 'prompt-file': { type: 'string' },
    'max-new-tokens': { type: 'string' }, backend: { type: 'string' }, 'kv-dtype': { type: 'string' },
    'block-length': { type: 'string' }, steps: { type: 'string' }, threads: { type: 'string' },
  })
  const threads = kernelThreads(v.threads as string | undefined)
  const dtype = kvDtype(v['kv-dtype'] as string | undefined)
  if (v.model === undefined) throw new UsageError('--model is required')
  if ((v.prompt === undefined) === (v['prompt-file'] === undefined)) throw new UsageError('give exactly one of --prompt TEXT and --prompt-file FILE')
  const maxNewTokens = positive('max-new-tokens', v['max-new-tokens'] as string | undefined, 64)
  const be = await availableBackend(v.backend as string | undefined)
  const spec = (v.policy as string | undefined) ?? 'full'
  // a bad folder or spec fails here, before the weights load
  const facts = usage(() => readModelFacts(v.model as string))
  const diffusion = facts.diffusion
    ? { genLength: maxNewTokens, blockLength: v['block-length'] === undefined ? undefined : positive('block-length', v['block-length'] as string), steps: v.steps === undefined ? undefined : positive('steps', v.steps as string), cache: usage(() => diffusionCacheFromSpec(spec)) }
    : undefined
  if (diffusion && dtype !== undefined && dtype !== 'float32') throw new UsageError(`--kv-dtype ${dtype}: a diffusion model's decode keeps float32 K/V`)
  if (!diffusion && (v['block-length'] !== undefined || v.steps !== undefined)) throw new UsageError('--block-length and --steps are for a masked diffusion LM; this model is causal')
  if (!diffusion) usage(() => createPolicy(spec, facts.shape))
  let text: string
  try {
    text = (v.prompt as string | undefined) ?? readFileSync(v['prompt-file'] as string, 'utf8')
  } catch {
    throw new UsageError(`cannot read prompt file ${v['prompt-file']}`)
  }
  const model = await loadModel(v.model as string, { backend: be, kvDtype: dtype, threads })
  try {
    const bos = model.config.bosTokenId ?? model.config.eosTokenIds[0]
    const beyond = (tokens: string) => new UsageError(`prompt (${tokens} tokens) + ${maxNewTokens} new tokens is beyond what the model supports (max_position_embeddings ${model.config.maxPositions})`)
    // a prompt file of megabytes is refused by the tokenizer's lower bound before seconds of tokenizing (token-bound.ts)
    const least = (bos === undefined ? 0 : 1) + (model.tokenizer.minTokens?.(text, model.config.maxPositions) ?? 0)
    if (least + maxNewTokens > model.config.maxPositions) throw beyond(`at least ${least}`)
    const ids = [...(bos === undefined ? [] : [bos]), ...model.tokenizer.encode(text)]
    if (ids.length + maxNewTokens > model.config.maxPositions) throw beyond(`${ids.length}`)
    if (diffusion) {
      const r = await usage(() => model.diffusionGenerate(ids, diffusion))
      process.stdout.write(r.text + '\n')
      const rc = r.stats.recompute
      process.stderr.write(`diffusion decode (${spec}): ${r.stats.steps} steps, ${r.stats.decodeMs.toFixed(0)} ms; ${(rc.computeRatio * 100).toFixed(1)}% of the full forward computed, ${rc.refreshSteps} refresh steps\n`)
      return
    }
    const gen = model.generate(ids, { maxNewTokens, policy: createPolicy(spec, model.config) ?? undefined })
    for await (const t of gen) process.stdout.write(t.text)
    const { stats } = await gen.result
    process.stdout.write('\n')
    process.stderr.write(`KV cache (${spec}): ${formatKept(stats.kvBytes.total, stats.kvBytesFull)} of the full cache, ${formatBytes(stats.kvBytes.reserved)} reserved; ` +
      `${stats.promptTokens} prompt tokens, ${stats.newTokens} new; prefill ${stats.prefillMs.toFixed(0)} ms, decode ${stats.decodeMsPerToken.toFixed(1)} ms/token; ` +
      `${model.kernels} on ${model.backend.threads ?? 1} thread${(model.backend.threads ?? 1) === 1 ? '' : 's'}\n`)
  } finally {
    model.dispose()
  }
}

async function cmdPerplexity(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, length: { type: 'string' }, samples: { type: 'string' }, seed: { type: 'string' },
    haystack: { type: 'string' }, backend: { type: 'string' }, 'kv-dtype': { type: 'string' }, threads: { type: 'string' },
  })
  if (v.model === undefined) throw new UsageError('--model is required')
  const dtype = kvDtype(v['kv-dtype'] as string | undefined)
  const threads = kernelThreads(v.threads as string | undefined)
  const length = int('length', v.length as string | undefined, 2048)
  const samples = positive('samples', v.samples as string | undefined, 16)
  const seed = int('seed', v.seed as string | undefined, DEFAULT_SEED)
  const be = await availableBackend(v.backend as string | undefined)
  const facts = usage(() => readModelFacts(v.model as string))
  if (facts.diffusion) throw new UsageError(`${v.model} is a masked diffusion LM (Dream): next-token perplexity needs a causal model`)
  if (length < 2 || length > facts.maxPositions) throw new UsageError(`length ${length} is ${length < 2 ? 'too short: perplexity needs at least 2 tokens' : `beyond what the model supports (max_position_embeddings ${facts.maxPositions})`}`)
  const books = usage(() => loadBooks((v.haystack as string | undefined) ?? defaultBooksDir()))
  const model = await loadModel(v.model as string, { backend: be, kvDtype: dtype, threads })
  try {
    const bosId = model.config.bosTokenId ?? model.config.eosTokenIds[0] ?? 0
    const ppl = await perplexity(model, { books, length, samples, seed, bosId })
    process.stdout.write(`perplexity ${ppl.toFixed(2)} (${samples} sample${samples === 1 ? '' : 's'} of ${length} tokens)\n`)
  } finally {
    model.dispose()
  }
}

async function cmdMpc(args: string[]): Promise<void> {
  const { values: v } = parse(args, { model: { type: 'string' }, length: { type: 'string' }, method: { type: 'string' }, trunc: { type: 'string' }, seed: { type: 'string' } })
  const modelDir = (v.model as string | undefined) ?? defaultModelDir()
  const { TRUNC_MODES } = await import('./mpc/engine.js')
  const trunc = (v.trunc as string | undefined) ?? 'one-round'
  if (!(TRUNC_MODES as readonly string[]).includes(trunc)) throw new UsageError(`--trunc must be one of ${TRUNC_MODES.join(', ')}, got ${JSON.stringify(trunc)}`)
  const length = int('length', v.length as string | undefined, 512)
  const facts = usage(() => readModelFacts(modelDir))
  // the private decode is causal: a diffusion model failed inside the prefill, after loading its weights
  if (facts.diffusion) throw new UsageError(`${modelDir} is a masked diffusion LM (Dream): kvkit mpc decodes causally; use a causal model`)
  if (length < 64 || length > facts.maxPositions) throw new UsageError(`--length ${length} is ${length < 64 ? 'too short: the passkey prompt needs at least 64 tokens' : `beyond what the model supports (max_position_embeddings ${facts.maxPositions})`}`)
  const method = (v.method as string | undefined) ?? 'mpcache'
  if (method !== 'mpcache' && method !== 'full') throw new UsageError(`--method must be mpcache or full, got ${JSON.stringify(method)}`)
  const { privatePasskey } = await import('./mpc/passkey.js')
  await privatePasskey({ model: modelDir, length, method, trunc: trunc as TruncMode, seed: int('seed', v.seed as string | undefined, 1) })
}

function cmdPolicies(args: string[]): void {
  parse(args, {})
  const fmt = (v: unknown): string => (v === null || v === undefined ? '(unset)' : String(v))
  process.stdout.write('full  (no options)  the whole cache, no compression\n')
  for (const p of listPolicies()) {
    const opts = p.options.map((o) => `${o.name}=${fmt(o.default)}`).join(' ')
    process.stdout.write(`${p.name}  ${opts || '(no options)'}  ${p.description}\n`)
  }
}

async function cmdPlayground(args: string[]): Promise<void> {
  const { values: v } = parse(args, { port: { type: 'string' }, model: { type: 'string' }, page: { type: 'string' } })
  const port = int('port', v.port as string | undefined, 8020)
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`)
  const model = resolve((v.model as string | undefined) ?? defaultModelDir())
  // a bad folder fails here, before the server starts
  usage(() => readModelFacts(model))
  const page = resolve((v.page as string | undefined) ?? join(packageRoot(), 'dist-playground'))
  if (!existsSync(join(page, 'index.html'))) throw new UsageError(`the playground page is not built in ${page}: run \`npm run build:playground\``)
  const server = await servePlayground({ page, model, port })
  process.stdout.write(`kvkit playground: ${server.url} (model ${model}); Ctrl-C stops it\n`)
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      void server.close().then(done)
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })
}

async function cmdServe(args: string[]): Promise<void> {
  const { values: v } = parse(args, {
    model: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, 'api-key': { type: 'string' }, policy: { type: 'string' },
    'kv-budget': { type: 'string' }, 'cache-tokens': { type: 'string' }, parallel: { type: 'string' }, 'max-tokens': { type: 'string' },
    'model-id': { type: 'string' }, backend: { type: 'string' }, 'edit-reuse': { type: 'boolean' },
    scheduler: { type: 'string' }, 'aging-ms': { type: 'string' }, blend: { type: 'string' }, 'blend-ratio': { type: 'string' },
    threads: { type: 'string' },
  })
  if (v.model === undefined) throw new UsageError('--model is required')
  const dir = v.model as string
  const threads = kernelThreads(v.threads as string | undefined)
  // an empty host would make node listen on every interface, where the default is this machine only;
  // an empty model id or API key is a name no client would send
  for (const name of ['host', 'model-id', 'api-key'])
    if (v[name] !== undefined && (v[name] as string).trim() === '') throw new UsageError(`--${name} must not be empty, got ${JSON.stringify(v[name])}`)
  // set but empty (KVKIT_API_KEY=$UNSET) would ask every client for a key none can send; unset means no key
  if (v['api-key'] === undefined && process.env.KVKIT_API_KEY?.trim() === '') throw new UsageError('KVKIT_API_KEY is set but empty: give it a key, or unset it to serve without one')
  const apiKey = (v['api-key'] as string | undefined) ?? process.env.KVKIT_API_KEY
  if (apiKey !== undefined && !isBearerToken(apiKey))
    throw new UsageError(`${v['api-key'] === undefined ? 'KVKIT_API_KEY' : '--api-key'} must be ${BEARER_TOKEN_RULE}; ${notBearerAt(apiKey)}`)
  const port = int('port', v.port as string | undefined, 8080)
  if (port > 65535) throw new UsageError(`--port must be in [0, 65535], got ${port}`)
  const facts = usage(() => readModelFacts(dir))
  if (facts.diffusion) throw new UsageError(`${dir} is a masked diffusion LM (Dream): kvkit serve generates causally; use kvkit generate or eval`)
  const spec = v.policy as string | undefined
  if (spec !== undefined) usage(() => createPolicy(spec, facts.shape))
  const opt = (name: string) => (v[name] === undefined ? undefined : positive(name, v[name] as string))
  const order = v.scheduler as QueueOrder | undefined
  if (order !== undefined && !['fcfs', 'kvshare', 'program'].includes(order)) throw new UsageError(`--scheduler must be fcfs, kvshare or program, got ${JSON.stringify(order)}`)
  // only KVShare's order ages waiting requests: with fcfs or program the value would be ignored
  if (v['aging-ms'] !== undefined && order !== 'kvshare') throw new UsageError(`--aging-ms needs --scheduler kvshare (the ${order ?? 'fcfs'} order does not age requests)`)
  const blendOn = (v.blend as string | undefined) ?? 'on'
  if (blendOn !== 'on' && blendOn !== 'off') throw new UsageError(`--blend must be on or off, got ${JSON.stringify(blendOn)}`)
  const rawRatio = v['blend-ratio'] as string | undefined
  const ratio = rawRatio === undefined ? undefined : Number(rawRatio)
  if (ratio !== undefined && !(rawRatio!.trim() !== '' && ratio >= 0 && ratio <= 1)) throw new UsageError(`--blend-ratio must be a number in [0, 1], got ${JSON.stringify(rawRatio)}`)
  if (ratio !== undefined && blendOn === 'off') throw new UsageError('--blend-ratio needs --blend on')
  const options: ServeOptions = {
    host: (v.host as string | undefined) ?? '127.0.0.1', port, apiKey,
    policy: spec, editReuse: (v['edit-reuse'] as boolean | undefined) === true, scheduler: order, agingMs: opt('aging-ms'), kvBudget: opt('kv-budget'), cacheTokens: opt('cache-tokens'), parallel: opt('parallel'), defaultMaxTokens: opt('max-tokens'),
    blend: blendOn === 'off' ? false : { ratio },
    modelId: (v['model-id'] as string | undefined) ?? basename(resolve(dir)),
    template: usage(() => ChatTemplate.fromTokenizerConfig(readJsonIfPresent(join(dir, 'tokenizer_config.json')))),
  }
  const budget = options.kvBudget ?? 4 * facts.maxPositions
  const cacheTokens = options.cacheTokens ?? Math.floor(budget / 2)
  if (cacheTokens >= budget) throw new UsageError(`--cache-tokens (${cacheTokens}) must be less than --kv-budget (${budget})`)
  // the prefix cache holds whole blocks of 16 tokens (ServeEngine's blockTokens): less would fail after the weights load
  if (cacheTokens < 16)
    throw new UsageError(options.cacheTokens === undefined
      ? `--kv-budget ${budget} leaves ${cacheTokens} tokens for the prefix cache (half of it, --cache-tokens); it needs at least 16, one block`
      : `--cache-tokens must be at least 16 (one prefix-cache block), got ${cacheTokens}`)
  const be = await availableBackend(v.backend as string | undefined)
  const model = await loadModel(dir, { backend: be, threads })
  try {
    const server = await serve(model, options).catch((e: NodeJS.ErrnoException) => {
      throw listenError(e, options.host!, port)
    })
    process.stderr.write(`kvkit serve: ${options.modelId} on ${server.url}/v1 (chat template: ${options.template!.source}; KV budget ${budget} tokens, ${cacheTokens} for the prefix cache)\n`)
    await new Promise<void>((done) => {
      const stop = () => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        done()
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    })
    await server.close()
  } finally {
    model.dispose()
  }
}

/** listen()'s failure on the address the user chose as a usage error naming the option; others pass */
function listenError(e: NodeJS.ErrnoException, host: string, port: number): Error {
  const why: Record<string, string> = {
    EADDRINUSE: `--port ${port} is in use on ${host} (another server listens there; --port 0 picks a free one)`,
    EACCES: `--port ${port} on ${host} needs privileges this process lacks (ports under 1024 usually do)`,
    EADDRNOTAVAIL: `--host ${host} is not an address of this machine`,
    ENOTFOUND: `--host ${host} does not resolve to an address`,
    EAI_AGAIN: `--host ${host} does not resolve to an address`,
  }
  return e.code !== undefined && why[e.code] !== undefined ? new UsageError(why[e.code]) : e
}

/** a JSON file's value, or undefined when there is no such file (a bad one is a usage error) */
function readJsonIfPresent(file: string): Record<string, unknown> | undefined {
  if (!existsSync(file)) return undefined
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as Error).message}`)
  }
}

const COMMANDS: readonly (string | undefined)[] = ['eval', 'generate', 'perplexity', 'policies', 'mpc', 'main', 'prompts', 'playground', 'serve']

/** Runs the command line; returns the exit code. Errors are one line on stderr. */
export async function runCli(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  // `kvkit COMMAND --help` as `kvkit --help`: the usage of every command, on stdout, exit 0
  if (COMMANDS.includes(command) && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  try {
    switch (command) {
      case 'eval': await cmdEval(rest); break
      case 'generate': await cmdGenerate(rest); break
      case 'perplexity': await cmdPerplexity(rest); break
      case 'policies': cmdPolicies(rest); break
      case 'mpc': await cmdMpc(rest); break
      case 'main': await cmdMain(rest); break
      case 'prompts': await cmdPrompts(rest); break
      case 'playground': await cmdPlayground(rest); break
      case 'serve': await cmdServe(rest); break
      case undefined: case 'help': case '--help': case '-h':
        process.stdout.write(USAGE + '\n')
        return command === undefined ? 2 : 0
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: ${COMMANDS.join(', ')})`)
    }
    return 0
  } catch (e) {
    const err = e as Error
    process.stderr.write(`kvkit: ${String(err.message ?? err).replace(/\s*\n\s*/g, ' ')}\n`)
    return e instanceof UsageError || e instanceof EvalArgumentError ? 2 : 1
  }
}

/**
 * Time of KVzip's context reconstruction (the repeat passes and the max-attention scores) on the
 * fixture model, against a prefill of the same context, at each length given. The context is a
 * niah_single prompt of the shipped books (question included), prefilled once per length; each variant
 * scores a fresh prefill of it.
 *   node dist/bench/kvzip-reconstruction.js [--threads T] [--variants plain,plus,both] [--baseline DIR] [lengths...]
 * Default: 1 kernel thread, lengths 2048 4096; `plain` and `plus` are one variant each, `both` the two
 * from one reconstruction (kvzipScoresShared). --baseline DIR: a built kvkit checkout (its dist/ and
 * build/) timed in the same process, alternating with this one, each on its own model; a checkout
 * without kvzipScoresShared runs one reconstruction per variant (kvzipScores). On a loaded machine the
 * CPU column (the process's user + system time; one kernel thread) is the steadier figure.
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { haystackBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import type { LlamaModel } from '../src/model/model.js'
import type { KVzipOptions, RepeatPrompts } from '../src/policies/kvzip.js'
import type { PolicyContext } from '../src/policies/types.js'

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

const base: Omit<KVzipOptions, 'plus'> = { sinks: 4, chunk: 2048, overlap: 8 }
const VARIANTS: Record<string, boolean[]> = { plain: [false], plus: [true], both: [false, true] }

/** one build of kvkit: its model and its KVzip scoring, loaded from `root`'s dist/ */
interface Build {
  name: string
  model: LlamaModel
  repeat: RepeatPrompts
  policyRuntime: typeof import('../src/model/policy-runtime.js').policyRuntime
  scores: (ctx: PolicyContext, p: RepeatPrompts, o: KVzipOptions[]) => unknown
}

async function loadBuild(name: string, root: string, threads: number): Promise<Build> {
  const mod = (p: string) => import(pathToFileURL(resolve(root, 'dist', p)).href)
  const { loadModel } = await mod('src/node/load.js')
  const kvzip = await mod('src/policies/kvzip.js')
  const model: LlamaModel = await loadModel(defaultModelDir(), { backend: 'wasm', threads })
  return {
    name, model, repeat: kvzip.repeatPrompts(model.tokenizer),
    policyRuntime: (await mod('src/model/policy-runtime.js')).policyRuntime,
    scores: kvzip.kvzipScoresShared ?? ((ctx, p, o) => o.map((x) => kvzip.kvzipScores(ctx, p, x))),
  }
}

async function main(): Promise<void> {
  const threads = Number(arg('threads', '1'))
  const variants = arg('variants', 'plain,plus,both').split(',')
  for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${JSON.stringify(v)} (plain, plus, both)`)
  const lengths = process.argv.slice(2).filter((x, i, a) => /^\d+$/.test(x) && !a[i - 1]?.startsWith('--')).map(Number)
  const here = resolve(new URL('../..', import.meta.url).pathname)
  const builds = [await loadBuild('this', here, threads)]
  const baseline = arg('baseline', '')
  if (baseline) builds.unshift(await loadBuild('baseline', baseline, threads))
  const tok = builds[0].model.tokenizer
  const builder = new PromptBuilder({ tokenizer: tok, bosId: builds[0].model.config.bosTokenId ?? 0, books: haystackBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
  console.log(`KVzip reconstruction, fixture model, wasm (${builds.map((b) => `${b.name}: ${b.model.kernels}`).join(', ')}), ${threads} kernel thread(s)`)
  console.log('| context tokens | build | prefill ms | variant | reconstruction ms | CPU ms | x prefill |\n| --- | --- | --- | --- | --- | --- | --- |')
  for (const L of lengths.length ? lengths : [2048, 4096]) {
    const ids = builder.build('niah_single', L, 1, 0).promptIds
    for (const v of variants) {
      for (const b of builds) {
        const cache = b.model.newCache()
        const t0 = performance.now()
        b.model.prefill(ids, cache, 0)
        const prefillMs = performance.now() - t0
        const ctx: PolicyContext = { cache, ops: b.model.ops, model: b.model.config, hooks: [], promptLength: ids.length, step: 0 }
        ctx.runtime = b.policyRuntime(b.model, cache, ids, () => ctx)
        const c0 = performance.now()
        const u0 = process.cpuUsage()
        await b.scores(ctx, b.repeat, VARIANTS[v].map((plus) => ({ ...base, plus })))
        const ms = performance.now() - c0
        // CPU time of the process: with one kernel thread, the work itself, whatever else the machine runs
        const u = process.cpuUsage(u0)
        console.log(`| ${ids.length} | ${b.name} | ${prefillMs.toFixed(0)} | ${v} | ${ms.toFixed(0)} | ${((u.user + u.system) / 1000).toFixed(0)} | ${(ms / prefillMs).toFixed(1)} |`)
        cache.dispose()
      }
    }
  }
  for (const b of builds) b.model.dispose()
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

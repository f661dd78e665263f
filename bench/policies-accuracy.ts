/**
 * Policy accuracy on the fixture's retrieval tasks, the kvpress protocol (peers.md): prefill all but the
 * last prompt token, compress, decode the answer greedily from the compressed cache. The prefill does not
 * depend on the policy, so each sample is prefilled once (capturing every hook any policy here needs) and
 * every policy starts from a copy of that cache: the same numbers `generate({ policy })` gives, in a
 * fraction of the time.
 *   node dist/bench/policies-accuracy.js --samples 8 --tasks passkey,niah_single,vt --length 4096 \
 *     --policies 'full;snapkv:budget=0.25;...' [--out results.json] [--prefill-dir DIR] [--first I]
 * --from a.json,b.json prints the table of earlier runs merged.
 * --prefill-dir keeps each sample's prefill (cache and hooks, ~35 MB at 4k) so later runs only decode.
 * --books A,B takes the haystack from other books (files or folders) than the eval's: tune on some, confirm on others.
 * --question before,after runs both modes on one prefill. After: query-agnostic, as a compressed document is reused for many questions: the context
 * (the prompt without its question block) is compressed with no sight of the question, then the question
 * is prefilled on the compressed cache and the answer decoded. Policies that read the prompt's attention
 * mass get the whole prompt's (it includes the question): H2O-like rows of that mode are not agnostic.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { defaultBooksDir, defaultModelDir, defaultWordsFile } from '../src/eval/paths.js'
import { PromptBuilder } from '../src/eval/prompt.js'
import { rulerScore, strictCorrect } from '../src/eval/score.js'
import type { TaskName } from '../src/eval/tasks.js'
import { loadBooks } from '../src/eval/text.js'
import { loadWordList } from '../src/eval/words.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import { HookCapture } from '../src/model/hooks.js'
import { loadModel } from '../src/node/load.js'
import { resolve } from 'node:path'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import type { LayerHooks, PolicyContext } from '../src/policies/types.js'

interface Row {
  policy: string
  task: string
  index: number
  correct: boolean
  /** RULER's finer score: the share of expected values found */
  ruler: number
  text: string
  keptBytes: number
  fullBytes: number
  compressMs: number
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : def
}

/** a layer's keys and values in the projection layout [T][kvHeads][d] that `append` takes */
function layerKV(base: PagedKVCache, l: number, kvHeads: number, d: number): { k: Float32Array; v: Float32Array } {
  const T = base.length(l, 0)
  const k = new Float32Array(T * kvHeads * d)
  const v = new Float32Array(T * kvHeads * d)
  for (let h = 0; h < kvHeads; h++) {
    const kh = base.readKeys(l, h)
    const vh = base.readValues(l, h)
    for (let t = 0; t < T; t++) {
      k.set(kh.subarray(t * d, (t + 1) * d), (t * kvHeads + h) * d)
      v.set(vh.subarray(t * d, (t + 1) * d), (t * kvHeads + h) * d)
    }
  }
  return { k, v }
}

/** a copy of the first `T` tokens of the prefilled cache (all of them by default) */
export function copyCache(model: LlamaModel, base: PagedKVCache, T = base.length(0, 0)): PagedKVCache {
  const { layers, kvHeads, headDim: d } = model.config
  const cache = model.newCache()
  for (let l = 0; l < layers; l++) {
    const { k, v } = layerKV(base, l, kvHeads, d)
    cache.append(l, k.subarray(0, T * kvHeads * d), v.subarray(0, T * kvHeads * d), base.positions(l, 0).subarray(0, T))
  }
  return cache
}

/** the last 128 queries are captured: the last 64 of the prompt, and those before the question block */
const OBS = 128
const WINDOW = 64

/** the observation queries of the `WINDOW` tokens ending at token `end` (exclusive), from the captured ones */
function observationBefore(hooks: LayerHooks[], end: number, qHeads: number, d: number): LayerHooks[] {
  return hooks.map((h) => {
    const pos = h.observationPositions!
    const have = pos.length
    const stop = have - (pos[have - 1] + 1 - end)
    const start = stop - WINDOW
    if (start < 0) throw new Error(`the question block is longer than ${OBS - WINDOW} tokens`)
    const q = new Float32Array(qHeads * WINDOW * d)
    for (let x = 0; x < qHeads; x++) q.set(h.observationQueries!.subarray((x * have + start) * d, (x * have + stop) * d), x * WINDOW * d)
    return { layer: h.layer, attentionMass: h.attentionMass, observationQueries: q, observationPositions: pos.slice(start, stop) }
  })
}

/**
 * The prefill of one prompt (all but its last token): the cache, the last 64 queries and the attention
 * mass per layer. With a directory, kept on disk so that later runs skip the model entirely.
 */
function prefilled(model: LlamaModel, ids: number[], file: string | null): { base: PagedKVCache; hooks: LayerHooks[]; ms: number } {
  const cfg = model.config
  const { layers, kvHeads, qHeads, headDim: d } = cfg
  const T = ids.length - 1
  const base = model.newCache()
  const positions = Int32Array.from({ length: T }, (_, i) => i)
  const obs = Math.min(OBS, T)
  const sizes = { kv: T * kvHeads * d, mass: kvHeads * T, q: qHeads * obs * d }
  const perLayer = 2 * sizes.kv + sizes.mass + sizes.q
  if (file && existsSync(file)) {
    const buf = readFileSync(file)
    const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)
    if (all.length !== layers * perLayer) throw new Error(`${file}: ${all.length} floats, expected ${layers * perLayer}`)
    const hooks: LayerHooks[] = []
    for (let l = 0; l < layers; l++) {
      let o = l * perLayer
      const take = (n: number) => all.slice(o, (o += n))
      const k = take(sizes.kv)
      const v = take(sizes.kv)
      base.append(l, k, v, positions)
      hooks.push({ layer: l, attentionMass: take(sizes.mass), observationQueries: take(sizes.q), observationPositions: Int32Array.from({ length: obs }, (_, i) => T - obs + i) })
    }
    return { base, hooks, ms: 0 }
  }
  const capture = new HookCapture({ observationWindow: OBS, prefillAttentionMass: true }, cfg, model.backend.heap, T)
  const t0 = performance.now()
  model.prefill(ids.slice(0, T), base, 0, capture)
  capture.finishPrefill()
  const ms = performance.now() - t0
  const hooks = capture.hooks
  capture.dispose()
  if (file) {
    const all = new Float32Array(layers * perLayer)
    for (let l = 0; l < layers; l++) {
      let o = l * perLayer
      const put = (x: Float32Array) => {
        all.set(x, o)
        o += x.length
      }
      const { k, v } = layerKV(base, l, kvHeads, d)
      put(k)
      put(v)
      put(hooks[l].attentionMass!)
      put(hooks[l].observationQueries!)
    }
    writeFileSync(file + '.tmp', new Uint8Array(all.buffer))
    renameSync(file + '.tmp', file)
  }
  return { base, hooks, ms }
}

export function argmax(x: Float32Array): number {
  let b = 0
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i
  return b
}

async function main(): Promise<void> {
  const from = arg('from', '')
  if (from) {
    // tables from earlier runs' --out files, merged
    const rows: Row[] = from.split(',').flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as Row[])
    const specs = [...new Set(rows.map((r) => r.policy))]
    printTable(rows, specs, [...new Set(rows.map((r) => r.task))])
    return
  }
  const tasks = arg('tasks', 'passkey,niah_single,vt').split(',') as TaskName[]
  const samples = Number(arg('samples', '8'))
  const first = Number(arg('first', '0'))
  const length = Number(arg('length', '4096'))
  const seed = Number(arg('seed', '1'))
  const specs = arg('policies', 'full;snapkv:budget=0.25').split(';').map((s) => s.trim()).filter(Boolean)
  const out = arg('out', '')
  const dir = arg('prefill-dir', '') || null
  const books = arg('books', '') ? arg('books', '').split(',').flatMap((b) => loadBooks(resolve(b))) : loadBooks(defaultBooksDir())
  const modes = arg('question', 'before').split(',')
  for (const m of modes) if (m !== 'before' && m !== 'after') throw new Error(`--question takes before, after or both, got ${m}`)
  if (dir) mkdirSync(dir, { recursive: true })
  const model = await loadModel(defaultModelDir(), { backend: 'wasm' })
  const cfg = model.config
  const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId: cfg.bosTokenId ?? cfg.eosTokenIds[0], books, words: loadWordList(defaultWordsFile()) })
  const eos = new Set(cfg.eosTokenIds)
  const policies = specs.map((s) => ({ spec: s, make: () => createPolicy(s, cfg) }))
  const rows: Row[] = []
  const logits = new Float32Array(cfg.vocab)
  for (const task of tasks) {
    for (let index = first; index < first + samples; index++) {
      const sample = builder.build(task, length, seed, index)
      const ids = sample.promptIds
      const n = ids.length
      const file = dir ? join(dir, `${task}-${length}-${seed}-${index}.f32`) : null
      const { base, hooks: promptHooks, ms: prefillMs } = prefilled(model, ids, file)
      // question after: the context ends where the question block starts
      const questionIds = sample.pieces[sample.pieces.length - 1].ids
      for (const question of modes) {
      const contextLength = question === 'after' ? n - questionIds.length : n - 1
      const hooks = question === 'after' ? observationBefore(promptHooks, contextLength, cfg.qHeads, cfg.headDim) : promptHooks
      for (const { spec: bare, make } of policies) {
        const spec = question === 'after' ? `${bare} [question after]` : bare
        const policy = make()
        await policy?.prepare?.(model)
        const cache = copyCache(model, base, contextLength)
        const ctx: PolicyContext = { cache, ops: model.ops, model: cfg, hooks, promptLength: contextLength + 1, step: 0 }
        const session = policy?.start()
        const c0 = performance.now()
        const d = session?.onPrefillEnd?.(ctx)
        if (d) {
          cache.apply(d)
          session?.onApplied?.(d, ctx)
        }
        const compressMs = performance.now() - c0
        const keptBytes = cache.bytes().hot
        const fullBytes = cache.bytesPerToken * contextLength
        // the question block but its last token, on the compressed cache (its last token starts the decode loop)
        if (contextLength < n - 1) model.forward.step(ids.slice(contextLength, n - 1), Int32Array.from({ length: n - 1 - contextLength }, (_, i) => contextLength + i), cache, { first: contextLength, logits: 'last', out: logits })
        const decodeCapture = policy?.needs.decodeQueries ? new HookCapture({ decodeQueries: true }, cfg, model.backend.heap, n - 1) : null
        if (decodeCapture) ctx.hooks = decodeCapture.hooks
        const outIds: number[] = []
        let token = ids[n - 1]
        for (let step = 0, pos = n - 1; step < sample.answerIds.length + 3; step++, pos++) {
          model.forward.step([token], Int32Array.of(pos), cache, { capture: decodeCapture ?? undefined, decode: true, first: pos, logits: 'last', out: logits })
          ctx.step = step + 1
          const dd = session?.onDecodeStep?.(ctx)
          if (dd) {
            cache.apply(dd)
            session?.onApplied?.(dd, ctx)
          }
          token = argmax(logits)
          if (eos.has(token)) break
          outIds.push(token)
        }
        decodeCapture?.dispose()
        const text = model.tokenizer.decode(outIds)
        rows.push({ policy: spec, task, index, correct: strictCorrect(text, sample.answer), ruler: rulerScore(text, sample.expected), text, keptBytes, fullBytes, compressMs })
        cache.dispose()
      }
      }
      base.dispose()
      // written after every sample, so a run cut short still leaves what it measured
      if (out) writeFileSync(out, JSON.stringify(rows, null, 1))
      process.stderr.write(`${task} #${index}: prefill ${prefillMs.toFixed(0)} ms; ${rows.filter((r) => r.task === task && r.index === index).map((r) => (r.correct ? '1' : '0')).join('')}\n`)
    }
  }
  if (out) writeFileSync(out, JSON.stringify(rows, null, 1))
  console.log(`kernels: ${model.kernels}`)
  printTable(rows, [...new Set(rows.map((r) => r.policy))], tasks)
  model.dispose()
}

export function printTable(rows: Row[], specs: string[], tasks: string[]): void {
  const acc = (p: string, t: string) => {
    const r = rows.filter((x) => x.policy === p && x.task === t)
    return r.filter((x) => x.correct).length / Math.max(1, r.length)
  }
  const fullMean = specs.includes('full') ? tasks.reduce((a, t) => a + acc('full', t), 0) / tasks.length : NaN
  const ruler = (p: string) => {
    const r = rows.filter((x) => x.policy === p)
    return r.reduce((a, x) => a + x.ruler, 0) / Math.max(1, r.length)
  }
  const samples = (p: string) => rows.filter((x) => x.policy === p).length
  console.log(`| policy | KV kept | KV MiB | ${tasks.join(' | ')} | mean | of full | RULER score | samples | compress ms |`)
  console.log(`| --- | --- | --- | ${tasks.map(() => '---').join(' | ')} | --- | --- | --- | --- | --- |`)
  for (const p of specs) {
    const r = rows.filter((x) => x.policy === p)
    const kept = r.reduce((a, x) => a + x.keptBytes / x.fullBytes, 0) / r.length
    const ms = r.reduce((a, x) => a + x.compressMs, 0) / r.length
    const mean = tasks.reduce((a, t) => a + acc(p, t), 0) / tasks.length
    const mib = r.reduce((a, x) => a + x.keptBytes, 0) / r.length / 2 ** 20
    console.log(`| ${p} | ${(kept * 100).toFixed(1)}% | ${mib.toFixed(2)} | ${tasks.map((t) => acc(p, t).toFixed(2)).join(' | ')} | ${mean.toFixed(2)} | ${((mean / fullMean) * 100).toFixed(0)}% | ${ruler(p).toFixed(2)} | ${samples(p)} | ${ms.toFixed(0)} |`)
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

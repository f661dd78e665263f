// Prefill and decode of the fixture model on 1..N kernel threads, on book text, with the first greedy
// tokens recorded so another engine (tools/pytorch-speed.py) can be checked against the same output.
//   node dist/bench/threads.js [--ids FILE] [--lengths 1024,4096,8000] [--threads 1,2] [--decode 16] [--rounds 2] [--baseline DIR] [--min-part-macs N,..] [--chunk N] [--kv-dtype float16] [--json FILE]
//   node dist/bench/threads.js --write-ids     (re-derives bench/data/prompt-ids.json from data/books)
// --baseline DIR: the code replaced, either
//   - a built checkout (DIR/dist/src/node/load.js and DIR/build/ exist, e.g. a copy of main after
//     `npm run build`): its whole runtime (kernels, worker pool, threads builds) loads from DIR and runs
//     at every --threads count, alternately with this build, in the same run (engine "baseline"); or
//   - a build/ folder (its kvkit.wasm and kvkit.relaxed.wasm): one-thread prefill and decode only.
// --min-part-macs 16384,32768,65536: this build once per value of BackendOptions.minPartMacs (the least
// multiply-adds a thread's share of a kernel call gets), rows with a minPartMacs field.
// --chunk 512: prefill chunks of 512 tokens for every model of the run (default 128; the logits are the
// same bit for bit, larger chunks give each thread more rows a region).
// --kv-dtype float16 (or f16): every model of the run keeps its KV cache in float16 pages (loadModel's kvDtype).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import type { WasmLoadOptions } from '../src/backend/wasm/load.js'
import { createBackend, kernelBuild, type CreatedBackend } from '../src/backend/index.js'
import { nodeWorkerSpawner } from '../src/node/threads.js'

const MODEL = 'models/fixture-14m'
const IDS = 'bench/data/prompt-ids.json'
const BOOK = 'data/books/Pride_and_Prejudice_JaneAusten.txt'
const FIRST_TOKENS = 8

interface Row {
  engine: string
  threads: number
  context: number
  prefillTokS: number
  decodeMsTok: number
  firstTokens: number[]
  kernels: string
  /** prefill chunk (--chunk), absent for the default 128 */
  chunk?: number
  /** BackendOptions.minPartMacs of the row's model (--min-part-macs), absent for the default */
  minPartMacs?: number
  /** the KV cache's element type (--kv-dtype), absent for float32 */
  kvDtype?: 'float16'
}

async function writeIds(): Promise<void> {
  const model = await loadModel(MODEL, { threads: 1, backend: 'wasm' })
  const text = readFileSync(BOOK, 'utf8')
  const ids = [model.config.bosTokenId ?? 0, ...model.tokenizer.encode(text).slice(0, 16383)]
  model.dispose()
  writeFileSync(IDS, JSON.stringify({ model: 'fixture-14m', source: BOOK, note: 'bos_token_id, then the book text tokenized', ids }) + '\n')
  console.log(`wrote ${ids.length} ids to ${IDS}`)
}

/** prefill ids[0 .. n-1) then greedy decode from ids[n-1]: wall ms of the prefill, ms per decode step, the tokens */
function run(model: LlamaModel, ids: number[], n: number, steps: number): { prefillMs: number; decodeMs: number; tokens: number[] } {
  const cache = model.newCache()
  const logits = new Float32Array(model.config.vocab)
  const tokens: number[] = []
  try {
    const t0 = performance.now()
    model.prefill(ids.slice(0, n - 1), cache)
    const t1 = performance.now()
    let next = ids[n - 1]
    for (let s = 0; s < steps; s++) {
      model.forward.step([next], Int32Array.of(n - 1 + s), cache, { decode: true, logits: 'last', out: logits })
      let best = 0
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j
      tokens.push(best)
      next = best
    }
    const t2 = performance.now()
    return { prefillMs: t1 - t0, decodeMs: (t2 - t1) / steps, tokens }
  } finally {
    cache.dispose()
  }
}

function row(engine: string, model: LlamaModel, threads: number, n: number, r: { prefillMs: number; decodeMs: number; tokens: number[] }): Row {
  const chunk = model.forward.chunk
  return { engine, threads, context: n, prefillTokS: ((n - 1) / r.prefillMs) * 1000, decodeMsTok: r.decodeMs, firstTokens: r.tokens.slice(0, FIRST_TOKENS), kernels: kernelBuild(model.backend), ...(chunk !== 128 ? { chunk } : {}), ...(model.kvDtype === 'float16' ? { kvDtype: 'float16' as const } : {}) }
}

const fmt = (r: Row) =>
  `${r.engine.padEnd(9)} ${String(r.threads).padStart(2)} thr  ${String(r.context).padStart(5)}  prefill ${r.prefillTokS.toFixed(0).padStart(6)} tok/s  decode ${r.decodeMsTok.toFixed(2).padStart(6)} ms/tok  ${r.kernels}${r.minPartMacs ? `  minPartMacs ${r.minPartMacs}` : ''}${r.chunk ? `  chunk ${r.chunk}` : ''}${r.kvDtype ? `  kv ${r.kvDtype}` : ''}  first ${r.firstTokens.join(',')}`

export async function main(argv = process.argv.slice(2)): Promise<Row[]> {
  const { values: v } = parseArgs({
    args: argv,
    options: { ids: { type: 'string' }, lengths: { type: 'string' }, threads: { type: 'string' }, decode: { type: 'string' }, baseline: { type: 'string' }, json: { type: 'string' }, 'write-ids': { type: 'boolean' }, rounds: { type: 'string' }, 'min-part-macs': { type: 'string' }, chunk: { type: 'string' }, 'kv-dtype': { type: 'string' } },
  })
  if (v['write-ids']) {
    await writeIds()
    return []
  }
  const ids = (JSON.parse(readFileSync(v.ids ?? IDS, 'utf8')) as { ids: number[] }).ids
  const lengths = (v.lengths ?? '1024,4096,8000').split(',').map(Number)
  const threads = (v.threads ?? '1,2').split(',').map(Number)
  const steps = Number(v.decode ?? 16)
  const rounds = Number(v.rounds ?? 2)
  const minPartMacs = v['min-part-macs']?.split(',').map(Number)
  // prefill tokens a step (loadModel's chunk, default 128): results do not depend on it
  const chunk = v.chunk === undefined ? undefined : Number(v.chunk)
  // the CLI's spellings: float32, float16, or llama.cpp's f32, f16
  const kvDtype = ({ f32: 'float32', f16: 'float16' } as Record<string, string>)[v['kv-dtype'] ?? ''] ?? v['kv-dtype'] ?? 'float32'
  if (kvDtype !== 'float32' && kvDtype !== 'float16') throw new Error(`--kv-dtype: float32 or float16 (or f32, f16), got ${kvDtype}`)
  for (const n of lengths) if (!(Number.isInteger(n) && n >= 2 && n <= ids.length)) throw new Error(`--lengths: ${n} is not in [2, ${ids.length}]`)
  const rows: Row[] = []
  const emit = (r: Row) => {
    rows.push(r)
    console.log(fmt(r))
    if (v.json) writeFileSync(v.json, JSON.stringify(rows, null, 1) + '\n')
  }
  const baseDir = v.baseline?.replace(/\/?$/, '/')
  const baseCheckout = baseDir !== undefined && existsSync(baseDir + 'dist/src/node/load.js')
  // the replaced wasm and this build alternately, one thread, best of `rounds`
  if (baseDir !== undefined && !baseCheckout) {
    const base: WasmLoadOptions = { wasm: readFileSync(baseDir + 'kvkit.wasm'), relaxedWasm: readFileSync(baseDir + 'kvkit.relaxed.wasm') }
    const models = [await loadModel(MODEL, { threads: 1, wasm: base, chunk, kvDtype, backend: 'wasm' }), await loadModel(MODEL, { threads: 1, chunk, kvDtype, backend: 'wasm' })]
    for (const n of lengths) {
      const best = models.map(() => ({ prefillMs: Infinity, decodeMs: Infinity, tokens: [] as number[] }))
      for (let r = 0; r < rounds; r++) {
        models.forEach((m, i) => {
          const x = run(m, ids, n, steps)
          best[i] = { prefillMs: Math.min(best[i].prefillMs, x.prefillMs), decodeMs: Math.min(best[i].decodeMs, x.decodeMs), tokens: x.tokens }
        })
      }
      emit(row('baseline', models[0], 1, n, best[0]))
      emit(row('kvkit', models[1], 1, n, best[1]))
      console.log(`  this build / baseline, one thread: prefill x${(best[0].prefillMs / best[1].prefillMs).toFixed(2)}, decode x${(best[0].decodeMs / best[1].decodeMs).toFixed(2)}`)
    }
    models.forEach((m) => m.dispose())
  }
  // a whole baseline checkout: its loadModel (its own wasm files, worker pool and kernels)
  const loadBaseline = baseCheckout ? ((await import(pathToFileURL(resolve(baseDir + 'dist/src/node/load.js')).href)) as { loadModel: typeof loadModel }).loadModel : undefined
  for (const t of threads) {
    // with a baseline checkout, both load at t threads and alternate length by length, round by round;
    // with --min-part-macs, one model of this build per value
    // backend 'wasm' always: at one thread 'auto' would take a GPU where the host has one
    const models = [...(loadBaseline ? [await loadBaseline(MODEL, { threads: t, chunk, kvDtype, backend: 'wasm' })] : [])]
    const names = loadBaseline ? ['baseline'] : []
    const backends: CreatedBackend[] = []
    for (const min of minPartMacs ?? [undefined]) {
      if (min === undefined) models.push(await loadModel(MODEL, { threads: t, chunk, kvDtype, backend: 'wasm' }))
      else {
        const backend = await createBackend('wasm', { threads: t, spawnWorker: nodeWorkerSpawner, threadsOptional: true, minPartMacs: min })
        backends.push(backend)
        models.push(await loadModel(MODEL, { backendInstance: backend, chunk, kvDtype }))
      }
      names.push(min === undefined ? 'kvkit' : `kvkit min ${min}`)
    }
    try {
      for (const m of models) if (m.backend.threads !== t) console.log(`(asked for ${t} threads, runs ${m.backend.threads})`)
      for (const n of lengths) {
        const best = models.map(() => ({ prefillMs: Infinity, decodeMs: Infinity, tokens: [] as number[] }))
        for (let r = 0; r < rounds; r++) {
          models.forEach((m, i) => {
            const x = run(m, ids, n, steps)
            best[i] = { prefillMs: Math.min(best[i].prefillMs, x.prefillMs), decodeMs: Math.min(best[i].decodeMs, x.decodeMs), tokens: x.tokens }
          })
        }
        // rows of every --min-part-macs value are engine kvkit (the same tokens); the value is in its own field
        models.forEach((m, i) => emit({ ...row(names[i].startsWith('kvkit') ? 'kvkit' : names[i], m, m.backend.threads ?? 1, n, best[i]), ...(names[i].startsWith('kvkit min') ? { minPartMacs: Number(names[i].slice(10)) } : {}) }))
        if (loadBaseline) {
          const same = best.every((b) => b.tokens.join() === best[0].tokens.join())
          console.log(`  this build / baseline, ${t} threads: prefill x${(best[0].prefillMs / best[1].prefillMs).toFixed(2)}, decode x${(best[0].decodeMs / best[1].decodeMs).toFixed(2)}; greedy tokens ${same ? 'equal' : 'DIFFER'}`)
        }
      }
    } finally {
      models.forEach((m) => m.dispose())
      backends.forEach((b) => b.close?.())
    }
  }
  return rows
}

if (import.meta.url === `file://${process.argv[1]}`) await main()

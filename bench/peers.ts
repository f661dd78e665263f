// kvkit beside what JavaScript users run today, on the same model, prompt ids and greedy decoding:
// node-llama-cpp (llama.cpp's CPU build; F16 and Q8_0 KV caches) on the fixture converted to GGUF
// (tools/gguf-convert.ts), and onnxruntime-node on its ONNX export with past key values
// (tools/export-onnx.py). Each peer runs in its own process, one after another, so resident memory
// is each one's own; every ratio in the table is against kvkit's full cache in the same run.
// Lengths past max_position_embeddings (16k, 32k on the 8k fixture) run through kvkit's contextLimit
// and llama.cpp's context size: there the output is not the point, the speed is.
//
//   speed:     node dist/bench/peers.js --lengths 1024,4096 --new 32 --threads 1 [--shared-prefill] [--onnx PATH/model.onnx] [--json FILE]
//   accuracy:  node dist/bench/peers.js --accuracy PROMPTS.jsonl --out llama.jsonl [--threads 1]
//              (PROMPTS from `kvkit prompts --task passkey,niah_single,vt --length 4096 ...`; kvkit's rows:
//              `kvkit eval --prompts PROMPTS --json kvkit.json ...`)
//   table:     node dist/bench/peers.js --accuracy-table kvkit.json,llama.jsonl
//   speed rows of runs made side by side (--peers kvkit / llama-f16 / llama-q8 in concurrent processes):
//              node dist/bench/peers.js --table a.json,b.json,c.json
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { readPromptsFile } from '../src/eval/prompts-file.js'
import { aggregate, type EvalResult, type SampleOutcome } from '../src/eval/results.js'
import { loadModel } from '../src/node/load.js'
import { convertFolder } from '../tools/gguf-convert.js'
import { runPromptSamples } from './peers/prompt-runner.js'

const MODEL = 'models/fixture-14m'
const BOOK = 'data/books/Pride_and_Prejudice_JaneAusten.txt'

/** kvkit policies in the table: full, and the best eviction policy of the accuracy tables (UnionKV at 25%) */
const KVKIT_POLICIES = ['full', 'unionkv:budget=0.25']
/**
 * The selection policies at a prompt length: TokenSelect, Quest, and Quest over KIVI's 2-bit and 4-bit
 * pages, which hold fewer KV bytes than llama.cpp's Q8_0 cache (8.5 bits a value; KIVI-2 about 3, KIVI-4
 * about 5 with their float16 group metadata). KIVI-4 under Quest is the one whose accuracy at 4096 is at
 * least Q8_0's on 24 samples a task (BENCHMARKS, "Peers", accuracy). Budget: 512 tokens up to 4k (the
 * accuracy tables' setting), 2048 past it (the selection e2e bench's setting at 16k).
 */
export function selectionPolicies(length: number): string[] {
  const t = length <= 4096 ? 512 : 2048
  return [`tokenselect:tokens=${t},first=32,last=64`, `quest:tokens=${t}`, `kivi:bits=2+quest:tokens=${t}`, `kivi:bits=4+quest:tokens=${t}`]
}
/** onnxruntime runs up to this length: its attention materialises [heads, T, T] float32 at prefill (the fixture at 16k: 6 GiB a layer) */
const ONNX_MAX_LENGTH = 4096

interface Row {
  peer: string
  length: number
  tokens: number[]
  prefillMs: number
  decodeMs: number
  /** decode steps timed (all tokens after the first) */
  steps: number
  kvBytes: number
  maxRssBytes: number
}

export class PeersArgumentError extends Error {
  override name = 'PeersArgumentError'
}

const FLAGS = new Set(['lengths', 'new', 'threads', 'onnx', 'json', 'shared-prefill', 'peers', 'table', 'accuracy', 'out', 'accuracy-table', 'worker', 'prompt', 'gguf', 'context-limit'])
/** --peers names: which peers a speed run runs (all by default) */
const PEER_GROUPS = ['kvkit', 'llama-f16', 'llama-q8', 'onnx'] as const
const BOOLEAN = new Set(['shared-prefill'])

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--') || !FLAGS.has(a.slice(2))) throw new PeersArgumentError(`bench/peers: unknown argument ${JSON.stringify(a)} (flags: ${[...FLAGS].filter((f) => !['worker', 'prompt', 'gguf', 'context-limit'].includes(f)).map((f) => '--' + f).join(' ')})`)
    const name = a.slice(2)
    if (BOOLEAN.has(name)) out[name] = 'true'
    else if (argv[i + 1] === undefined || (argv[i + 1].startsWith('--') && name !== 'worker')) throw new PeersArgumentError(`bench/peers: ${a} needs a value`)
    else out[name] = argv[++i]
  }
  return out
}

function int(o: Record<string, string>, name: string, def: number, min: number): number {
  const v = o[name] === undefined ? def : Number(o[name])
  if (!Number.isInteger(v) || v < min) throw new PeersArgumentError(`bench/peers: --${name} must be an integer of at least ${min}, got ${JSON.stringify(o[name])}`)
  return v
}

interface Shape { layers: number; heads: number; kvHeads: number; headDim: number; vocab: number; maxPositions: number }
function shape(): Shape {
  const c = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8'))
  return { layers: c.num_hidden_layers, heads: c.num_attention_heads, kvHeads: c.num_key_value_heads, headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads, vocab: c.vocab_size, maxPositions: c.max_position_embeddings }
}

/** llama.cpp's cache: K and V of every layer for every position, F16 2 bytes a value, Q8_0 34 bytes a block of 32 */
function llamaKvBytes(s: Shape, kvType: 'F16' | 'Q8_0', positions: number): number {
  return 2 * s.layers * s.kvHeads * s.headDim * positions * (kvType === 'F16' ? 2 : 34 / 32)
}

/** `n` prompt ids: <|endoftext|> (bos, as the fixture was trained), then the book's text */
async function promptIds(n: number): Promise<number[]> {
  const m = await loadModel(MODEL, { backend: 'reference' })
  try {
    const text = readFileSync(BOOK, 'utf8')
    let ids: number[] = []
    for (let chars = n * 6; ids.length < n - 1; chars *= 2) ids = m.tokenizer.encode(text.slice(0, chars))
    return [m.config.bosTokenId ?? 0, ...ids.slice(0, n - 1)]
  } finally {
    m.dispose()
  }
}

const rss = () => process.resourceUsage().maxRSS * 1024

async function worker(o: Record<string, string>): Promise<Row[]> {
  const prompt = JSON.parse(readFileSync(o.prompt, 'utf8')) as number[]
  const n = Number(o.new)
  const peer = o.worker
  const base = { length: prompt.length, steps: n - 1 }
  const limit = o['context-limit'] ? Number(o['context-limit']) : undefined
  if (peer.startsWith('kvkit ')) {
    // one process for one policy, or (`kvkit shared:a|b|...`) for several generations from one prefill
    // --threads kernel threads (kvkit/node's default is every core: on a shared machine its threads wait
    // for each other at every barrier, as llama.cpp's spin)
    const model = await loadModel(MODEL, { backend: 'wasm', contextLimit: limit, threads: Number(o.threads) })
    const shared = peer.startsWith('kvkit shared:')
    const specs = shared ? peer.slice('kvkit shared:'.length).split('|') : [peer.slice('kvkit '.length)]
    const policy = (spec: string) => (spec === 'full' ? undefined : spec)
    const prefill = shared ? await model.prefillPrompt(prompt, specs.map(policy)) : undefined
    const rows: Row[] = []
    for (const spec of specs) {
      const r = await model.generate(prompt, { maxNewTokens: n, policy: policy(spec), prefill }).result
      const s = r.stats
      rows.push({ ...base, peer: `kvkit ${spec}`, tokens: r.ids, prefillMs: s.prefillMs, decodeMs: s.decodeMsPerToken * (r.ids.length - 1), kvBytes: s.kvBytes.total, maxRssBytes: rss() })
    }
    return rows
  }
  if (peer.startsWith('llama.cpp ')) {
    const { llamaCppGreedy, loadLlamaCppModel } = await import('./peers/llama-cpp.js')
    const kvType = peer.includes('Q8_0') ? 'Q8_0' : 'F16'
    const model = await loadLlamaCppModel(o.gguf)
    const r = await llamaCppGreedy(model, prompt, n, { kvType, threads: Number(o.threads) })
    return [{ ...base, peer, ...r, kvBytes: llamaKvBytes(shape(), kvType, prompt.length + n), maxRssBytes: rss() }]
  }
  if (peer === 'onnxruntime') {
    const { loadOrt, ortGreedy } = await import('./peers/onnxruntime.js')
    const session = await loadOrt(o.onnx, Number(o.threads))
    const s = shape()
    const r = await ortGreedy(session, { layers: s.layers, kvHeads: s.kvHeads, headDim: s.headDim, vocab: s.vocab }, prompt, n)
    return [{ ...base, peer, ...r, maxRssBytes: rss() }]
  }
  throw new PeersArgumentError(`bench/peers: unknown peer ${JSON.stringify(peer)}`)
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-')

/** the table of one length, as markdown rows; ratios against kvkit full of the same run */
function printRows(len: number, here: Row[]): void {
  const ref = here.find((r) => r.peer === 'kvkit full')
  const pre = (r: Row) => (r.length / r.prefillMs) * 1000
  const dec = (r: Row) => (r.steps / r.decodeMs) * 1000
  const x = (v: number, b: number | undefined) => (b === undefined ? '-' : fmt(v / b, 2))
  console.log(`\n${len}-token prompt\n| prompt | peer | prefill tok/s | x | decode tok/s | x | max RSS MiB | x | KV MiB | x | same tokens |\n|${' --- |'.repeat(11)}`)
  for (const r of here) {
    const same = ref ? r.tokens.findIndex((t, i) => t !== ref.tokens[i]) : -1
    const agree = !ref ? '-' : same < 0 ? `${r.tokens.length}/${r.tokens.length}` : `first ${same}`
    console.log(`| ${len} | ${r.peer} | ${fmt(pre(r))} | ${x(pre(r), ref && pre(ref))} | ${fmt(dec(r), 1)} | ${x(dec(r), ref && dec(ref))} | ${fmt(r.maxRssBytes / 2 ** 20)} | ${x(r.maxRssBytes, ref?.maxRssBytes)} | ${fmt(r.kvBytes / 2 ** 20, 1)} | ${x(r.kvBytes, ref?.kvBytes)} | ${agree} |`)
  }
}

async function speed(o: Record<string, string>): Promise<void> {
  const lengths = (o.lengths ?? '1024,4096').split(',').map((l) => {
    const v = Number(l)
    if (!Number.isInteger(v) || v < 2) throw new PeersArgumentError(`bench/peers: --lengths takes integers of at least 2 tokens, got ${JSON.stringify(l)}`)
    return v
  })
  const n = int(o, 'new', 32, 2)
  const threads = String(int(o, 'threads', 1, 1))
  if (o.onnx !== undefined && !existsSync(o.onnx)) throw new PeersArgumentError(`bench/peers: --onnx ${o.onnx} does not exist (export it with tools/export-onnx.py)`)
  const shared = o['shared-prefill'] === 'true'
  const groups = (o.peers ?? PEER_GROUPS.join(',')).split(',')
  for (const g of groups) if (!(PEER_GROUPS as readonly string[]).includes(g)) throw new PeersArgumentError(`bench/peers: --peers takes ${PEER_GROUPS.join(',')}, got ${JSON.stringify(g)}`)
  const work = mkdtempSync(join(tmpdir(), 'kvkit-peers-'))
  const gguf = join(work, 'fixture-f16.gguf')
  writeFileSync(gguf, await convertFolder(MODEL, 'f16'))
  const { maxPositions, heads } = shape()
  const self = fileURLToPath(import.meta.url)
  const rows: Row[] = []
  console.log(`peers on fixture-14m: ${n} greedy tokens after each prompt; every peer on ${threads} thread(s)` +
    (shared ? '; kvkit rows generate from one shared prefill in one process (prefill and max RSS are that process\'s)' : ''))
  if (!o.onnx) console.log('onnxruntime: not run (no --onnx model; export one with tools/export-onnx.py)')
  for (const len of lengths) {
    const policies = [...KVKIT_POLICIES, ...selectionPolicies(len)]
    const kvkit = !groups.includes('kvkit') ? [] : shared ? [`kvkit shared:${policies.join('|')}`] : policies.map((p) => `kvkit ${p}`)
    const llama = [...(groups.includes('llama-f16') ? ['llama.cpp F16 KV'] : []), ...(groups.includes('llama-q8') ? ['llama.cpp Q8_0 KV'] : [])]
    const onnx = o.onnx && groups.includes('onnx') && len <= ONNX_MAX_LENGTH ? ['onnxruntime'] : []
    if (o.onnx && len > ONNX_MAX_LENGTH) console.log(`onnxruntime at ${len}: not run (its prefill materialises [heads, T, T] float32 attention: ${fmt((heads * len * len * 4) / 2 ** 30, 1)} GiB a layer)`)
    // past the trained length: an explicit limit for kvkit; llama.cpp's context is sized to prompt + new tokens
    const limit = len + n > maxPositions ? String(len + n + 1) : ''
    const promptFile = join(work, `prompt-${len}.json`)
    writeFileSync(promptFile, JSON.stringify(await promptIds(len)))
    const here: Row[] = []
    for (const peer of [...kvkit, ...llama, ...onnx]) {
      try {
        const out = execFileSync(process.execPath, [self, '--worker', peer, '--prompt', promptFile, '--new', String(n), '--threads', threads, '--gguf', gguf, '--onnx', o.onnx ?? '-', '--context-limit', limit || '0'], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 7_200_000 })
        here.push(...(JSON.parse(out.trim().split('\n').pop()!) as Row[]))
        // after each peer, so a long run's finished rows survive it
        if (o.json) writeFileSync(o.json, JSON.stringify([...rows, ...here], null, 1))
      } catch (e) {
        console.log(`${peer} at ${len}: failed (${((e as { stderr?: string }).stderr || (e as Error).message).trim().split('\n').slice(-3).join(' / ')})`)
      }
    }
    printRows(len, here)
    rows.push(...here)
  }
}

/** the speed tables of rows saved by --json, from runs made side by side */
function speedTable(files: string[]): void {
  const rows = files.flatMap((f) => JSON.parse(readFileSync(f, 'utf8')) as Row[])
  for (const len of [...new Set(rows.map((r) => r.length))].sort((a, b) => a - b)) printRows(len, rows.filter((r) => r.length === len))
}

/** llama.cpp F16 and Q8_0 KV on a prompts file, scored by kvkit's scorer; outcomes appended to `out` as JSONL */
async function accuracy(o: Record<string, string>): Promise<void> {
  if (!o.out) throw new PeersArgumentError('bench/peers: --accuracy needs --out FILE.jsonl')
  if (!existsSync(o.accuracy)) throw new PeersArgumentError(`bench/peers: --accuracy ${o.accuracy} does not exist (write it with kvkit prompts)`)
  const threads = int(o, 'threads', 1, 1)
  const s = shape()
  const samples = readPromptsFile(o.accuracy, s.vocab)
  const kvkit = await loadModel(MODEL, { backend: 'reference' })
  const gguf = join(mkdtempSync(join(tmpdir(), 'kvkit-peers-')), 'fixture-f16.gguf')
  writeFileSync(gguf, await convertFolder(MODEL, 'f16'))
  const { llamaCppGreedy, loadLlamaCppModel } = await import('./peers/llama-cpp.js')
  const model = await loadLlamaCppModel(gguf)
  const full = 2 * s.layers * s.kvHeads * s.headDim * 4
  for (const kvType of ['F16', 'Q8_0'] as const) {
    const peer = { name: `llama.cpp ${kvType} KV`, kvDtype: kvType, greedy: (ids: number[], k: number) => llamaCppGreedy(model, ids, k, { kvType, threads }), kvBytes: (t: number) => llamaKvBytes(s, kvType, t) }
    await runPromptSamples(peer, samples, (ids) => kvkit.tokenizer.decode(ids), kvkit.config.eosTokenIds, full, (r) => {
      appendFileSync(o.out, JSON.stringify(r) + '\n')
      console.log(`${r.policy} ${r.task} #${r.index}: ${r.correct ? 'correct' : 'wrong'} ${JSON.stringify(r.continuation)}`)
    })
  }
}

/** cells of kvkit eval's --json (EvalResult[]) and of --accuracy's outcomes (JSONL), as one markdown table */
function accuracyTable(files: string[]): void {
  const cells: EvalResult[] = []
  for (const f of files) {
    const text = readFileSync(f, 'utf8').trim()
    // kvkit eval's --json: { results: EvalResult[], ... }; --accuracy's: one SampleOutcome a line
    const whole = (() => {
      try {
        return JSON.parse(text) as { results?: EvalResult[] }
      } catch {
        return undefined
      }
    })()
    if (whole?.results) cells.push(...whole.results)
    else {
      const outcomes = text.split('\n').map((l) => JSON.parse(l) as SampleOutcome)
      const order = [...new Map(outcomes.map((x) => [`${x.policy}/${x.task}/${x.length}`, { policy: x.policy, task: x.task, length: x.length }])).values()]
      cells.push(...aggregate(outcomes, order))
    }
  }
  const tasks = [...new Set(cells.map((c) => c.task))]
  const q8 = cells.filter((c) => c.policy === 'llama.cpp Q8_0 KV')
  const q8Bytes = q8.length ? q8.reduce((a, c) => a + c.kvBytes, 0) / q8.length : NaN
  console.log(`| peer / policy | ${tasks.join(' | ')} | mean | KV MiB | x llama.cpp Q8_0 KV |\n|${' --- |'.repeat(tasks.length + 4)}`)
  for (const policy of [...new Set(cells.map((c) => c.policy))]) {
    const mine = tasks.map((t) => cells.find((c) => c.policy === policy && c.task === t))
    const acc = mine.map((c) => (c ? `${c.accuracy.toFixed(2)} (${Math.round(c.accuracy * c.samples)}/${c.samples})` : '-'))
    const got = mine.filter((c): c is EvalResult => !!c)
    const mean = got.reduce((a, c) => a + c.accuracy, 0) / got.length
    const kv = got.reduce((a, c) => a + c.kvBytes, 0) / got.length
    const name = policy.startsWith('llama.cpp') ? policy : `kvkit \`${policy}\``
    console.log(`| ${name} | ${acc.join(' | ')} | ${mean.toFixed(2)} | ${(kv / 2 ** 20).toFixed(2)} | ${fmt(kv / q8Bytes, 2)} |`)
  }
}

async function main(): Promise<void> {
  const o = args(process.argv.slice(2))
  if (o.worker) {
    if (o['context-limit'] === '0') delete o['context-limit']
    process.stdout.write(JSON.stringify(await worker(o)) + '\n')
    return
  }
  if (o.table) return speedTable(o.table.split(','))
  if (o['accuracy-table']) return accuracyTable(o['accuracy-table'].split(','))
  if (o.accuracy) return accuracy(o)
  return speed(o)
}

main().then(() => process.exit(0), (e) => {
  console.error(e instanceof PeersArgumentError ? e.message : e)
  process.exit(e instanceof PeersArgumentError ? 2 : 1)
})

// kvkit beside what JavaScript users run today, on the same model, prompt ids and greedy decoding:
// node-llama-cpp (llama.cpp's CPU build; F16 and Q8_0 KV caches) on the fixture converted to GGUF
// (tools/gguf-convert.ts), and onnxruntime-node on its ONNX export with past key values
// (tools/export-onnx.py). Each peer runs in its own process, one after another, so resident memory
// is each one's own; every ratio in the table is against kvkit's full cache in the same run.
//
//   node dist/bench/peers.js --lengths 1024,4096 --new 32 --threads 1 [--onnx PATH/model.onnx] [--json FILE]
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadModel } from '../src/node/load.js'
import { convertFolder } from '../tools/gguf-convert.js'

const MODEL = 'models/fixture-14m'
const BOOK = 'data/books/Pride_and_Prejudice_JaneAusten.txt'

/** kvkit policies in the table: full, and the best eviction policy of the accuracy tables (UnionKV at 25%) */
const KVKIT_POLICIES = ['full', 'unionkv:budget=0.25']
/**
 * Hook for the selection policies (TokenSelect, Quest: branch `select`): add their specs here once they
 * are on main, e.g. 'tokenselect:tokens=512,first=32,last=64' and 'quest:tokens=512'.
 */
export const SELECTION_POLICIES: string[] = []

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
  note?: string
}

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) if (argv[i].startsWith('--')) out[argv[i].slice(2)] = argv[i + 1]?.startsWith('--') || argv[i + 1] === undefined ? 'true' : argv[++i]
  return out
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

async function worker(o: Record<string, string>): Promise<Row> {
  const prompt = JSON.parse(readFileSync(o.prompt, 'utf8')) as number[]
  const n = Number(o.new)
  const peer = o.worker
  const base = { peer, length: prompt.length, steps: n - 1 }
  if (peer.startsWith('kvkit ')) {
    const model = await loadModel(MODEL, { backend: 'wasm' })
    const spec = peer.slice('kvkit '.length)
    const r = await model.generate(prompt, { maxNewTokens: n, policy: spec === 'full' ? undefined : spec }).result
    const s = r.stats
    return { ...base, tokens: r.ids, prefillMs: s.prefillMs, decodeMs: s.decodeMsPerToken * (r.ids.length - 1), kvBytes: s.kvBytes.total, maxRssBytes: process.resourceUsage().maxRSS * 1024 }
  }
  if (peer.startsWith('llama.cpp ')) {
    const { llamaCppGreedy, loadLlamaCppModel } = await import('./peers/llama-cpp.js')
    const kvType = peer.endsWith('Q8_0') ? 'Q8_0' : 'F16'
    const model = await loadLlamaCppModel(o.gguf)
    const r = await llamaCppGreedy(model, prompt, n, { kvType, threads: Number(o.threads) })
    // llama.cpp's cache: K and V of every layer for every position, F16 2 bytes, Q8_0 34 bytes a block of 32
    const perValue = kvType === 'F16' ? 2 : 34 / 32
    const kv = 2 * 8 * 2 * 64 * (prompt.length + n) * perValue
    return { ...base, ...r, kvBytes: kv, maxRssBytes: process.resourceUsage().maxRSS * 1024 }
  }
  if (peer === 'onnxruntime') {
    const { loadOrt, ortGreedy } = await import('./peers/onnxruntime.js')
    const session = await loadOrt(o.onnx, Number(o.threads))
    const r = await ortGreedy(session, { layers: 8, kvHeads: 2, headDim: 64, vocab: 4096 }, prompt, n)
    return { ...base, ...r, maxRssBytes: process.resourceUsage().maxRSS * 1024 }
  }
  throw new Error(`unknown peer ${peer}`)
}

const fmt = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-')

async function main(): Promise<void> {
  const o = args(process.argv.slice(2))
  if (o.worker) {
    process.stdout.write(JSON.stringify(await worker(o)) + '\n')
    return
  }
  const lengths = (o.lengths ?? '1024,4096').split(',').map(Number)
  const n = Number(o.new ?? 32)
  const threads = o.threads ?? '1'
  const work = mkdtempSync(join(tmpdir(), 'kvkit-peers-'))
  const gguf = join(work, 'fixture-f16.gguf')
  writeFileSync(gguf, await convertFolder(MODEL, 'f16'))
  const onnx = o.onnx && existsSync(o.onnx) ? o.onnx : undefined
  const peers = [...[...KVKIT_POLICIES, ...SELECTION_POLICIES].map((p) => `kvkit ${p}`), 'llama.cpp F16', 'llama.cpp Q8_0', ...(onnx ? ['onnxruntime'] : [])]
  const maxPositions = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')).max_position_embeddings as number
  const self = fileURLToPath(import.meta.url)
  const rows: Row[] = []
  console.log(`peers on fixture-14m: ${n} greedy tokens after each prompt; llama.cpp and onnxruntime on ${threads} thread(s), kvkit's wasm on one`)
  if (!onnx) console.log(`onnxruntime: not run (no --onnx model; export one with tools/export-onnx.py)`)
  for (const len of lengths) {
    if (len + n > maxPositions) {
      console.log(`\n${len} tokens: not run: past max_position_embeddings ${maxPositions}, and kvkit's explicit context-limit option (branch select) is not on main yet`)
      continue
    }
    const promptFile = join(work, `prompt-${len}.json`)
    writeFileSync(promptFile, JSON.stringify(await promptIds(len)))
    const here: Row[] = []
    for (const peer of peers) {
      try {
        const out = execFileSync(process.execPath, [self, '--worker', peer, '--prompt', promptFile, '--new', String(n), '--threads', threads, '--gguf', gguf, '--onnx', onnx ?? ''], { encoding: 'utf8', maxBuffer: 1 << 26, timeout: 1_800_000 })
        here.push(JSON.parse(out.trim().split('\n').pop()!))
      } catch (e) {
        console.log(`${peer} at ${len}: failed (${(e as Error).message.split('\n')[0]})`)
      }
    }
    const ref = here.find((r) => r.peer === 'kvkit full')
    console.log(`\n${len}-token prompt`)
    console.log('peer'.padEnd(30), 'prefill tok/s'.padStart(14), 'x kvkit'.padStart(8), 'decode tok/s'.padStart(13), 'x kvkit'.padStart(8), 'max RSS MiB'.padStart(12), 'x kvkit'.padStart(8), 'KV MiB'.padStart(8), 'x kvkit'.padStart(8), 'same tokens'.padStart(12))
    for (const r of here) {
      const pre = (r.length / r.prefillMs) * 1000
      const dec = (r.steps / r.decodeMs) * 1000
      const same = ref ? r.tokens.findIndex((t, i) => t !== ref.tokens[i]) : -1
      const agree = !ref ? '-' : same < 0 ? `${r.tokens.length}/${r.tokens.length}` : `first ${same}`
      const x = (v: number, b: number) => (ref ? fmt(v / b, 2) : '-')
      console.log(
        r.peer.padEnd(30), fmt(pre).padStart(14), x(pre, ref ? (ref.length / ref.prefillMs) * 1000 : 1).padStart(8), fmt(dec, 1).padStart(13), x(dec, ref ? (ref.steps / ref.decodeMs) * 1000 : 1).padStart(8),
        fmt(r.maxRssBytes / 2 ** 20, 0).padStart(12), x(r.maxRssBytes, ref?.maxRssBytes ?? 1).padStart(8), fmt(r.kvBytes / 2 ** 20, 1).padStart(8), x(r.kvBytes, ref?.kvBytes ?? 1).padStart(8), agree.padStart(12),
      )
    }
    rows.push(...here)
  }
  if (o.json) writeFileSync(o.json, JSON.stringify(rows, null, 1))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

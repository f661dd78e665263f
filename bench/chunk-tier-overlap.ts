// loadChunks on a cold tier (every chunk missing: computed, then written) against the loop it replaced
// (each chunk's read and write awaited before the next chunk computes), on a tier with a simulated
// round trip (--latency ms a read or write, over an in-memory store) and on a FileChunkStore in a
// temporary folder; the compute alone (an in-memory store) is the floor. Alternated round by round in
// one process; medians. The fixture's passkey prompt at --length, cut into --chunks chunks.
//   npm run build && KVKIT_THREADS=1 node dist/bench/chunk-tier-overlap.js [--length 4096] [--chunks 6]
//     [--latency 20] [--rounds 5]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promptSample } from '../src/eval/prompts-file.js'
import type { LlamaModel } from '../src/model/model.js'
import { chunkKey, computeChunk, loadChunks, MemoryChunkStore, type ChunkKV, type ChunkStore } from '../src/reuse/chunk-kv.js'
import { FileChunkStore } from '../src/node/file-chunk-store.js'
import { arg, fixture, median, split } from './reuse-common.js'

const LENGTH = Number(arg('length', '4096'))
const CHUNKS = Number(arg('chunks', '6'))
const LATENCY = Number(arg('latency', '20'))
const ROUNDS = Number(arg('rounds', '5'))

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** an in-memory store behind a round trip of `ms` a call */
function remote(ms: number): ChunkStore {
  const m = new MemoryChunkStore()
  return {
    get: async (k) => (await sleep(ms), m.get(k)),
    set: async (k, kv) => (await sleep(ms), m.set(k, kv)),
  }
}

/** the loop loadChunks replaced: every read at once, then each chunk computed and its write awaited in turn */
async function sequential(model: LlamaModel, store: ChunkStore, chunks: number[][]): Promise<ChunkKV[]> {
  const keys = chunks.map((c) => chunkKey(c))
  const found = await Promise.all(keys.map((k) => store.get(k)))
  const out: ChunkKV[] = []
  for (let i = 0; i < chunks.length; i++) {
    const kv = found[i] ?? computeChunk(model, chunks[i])
    if (!found[i]) await store.set(keys[i], kv)
    out.push(kv)
  }
  return out
}

const { model, builder } = await fixture()
const { chunks } = split(promptSample(builder.build('passkey', LENGTH, 0, 0)), CHUNKS)
const tiers: [string, () => { store: ChunkStore; done: () => void }][] = [
  ['memory (compute alone)', () => ({ store: new MemoryChunkStore(), done: () => {} })],
  [`round trip ${LATENCY} ms`, () => ({ store: remote(LATENCY), done: () => {} })],
  ['FileChunkStore', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-tier-'))
    return { store: new FileChunkStore(dir), done: () => rmSync(dir, { recursive: true, force: true }) }
  }],
]
const ways: [string, (s: ChunkStore) => Promise<unknown>][] = [
  ['overlapped (loadChunks)', (s) => loadChunks(model, s, chunks)],
  ['sequential (before)', (s) => sequential(model, s, chunks)],
]
const times = new Map<string, number[]>()
for (let r = 0; r < ROUNDS; r++) {
  for (const [tier, make] of tiers) {
    for (const [way, run] of ways) {
      const { store, done } = make()
      const t0 = performance.now()
      await run(store)
      const ms = performance.now() - t0
      done()
      const k = `${tier} | ${way}`
      times.set(k, [...(times.get(k) ?? []), ms])
    }
  }
}
console.log(`loadChunks on a cold tier: ${CHUNKS} chunks of the fixture's ${LENGTH}-token passkey prompt (${chunks.map((c) => c.length).join(', ')} tokens), ${ROUNDS} rounds, medians; ${new Date().toISOString()}`)
const floor = median(times.get(`memory (compute alone) | ${ways[0][0]}`)!)
for (const [k, v] of times) console.log(`  ${k.padEnd(52)} ${median(v).toFixed(0).padStart(6)} ms  (${(median(v) - floor).toFixed(0)} ms over the compute alone)`)
// the same round's pair: the machine's drift cancels
for (const [tier] of tiers) {
  const a = times.get(`${tier} | ${ways[0][0]}`)!
  const b = times.get(`${tier} | ${ways[1][0]}`)!
  console.log(`  ${tier}: sequential minus overlapped, per round: ${a.map((x, i) => (b[i] - x).toFixed(0)).join(', ')} ms (median ${median(a.map((x, i) => b[i] - x)).toFixed(0)})`)
}

/**
 * A private decode step of the fixture model's attention layers (8 layers, 6 query / 2 KV heads,
 * head_dim 64; full attention or MPCache) between two Node processes over a TCP socket on 127.0.0.1,
 * and the cost model's prediction of its wall time:
 *
 *   predicted = local compute + rounds x one-way latency + bytes sent / bandwidth
 *
 * The link's latency (ping-pong of one word, mean of 180 after 20 warm-up) and bandwidth (a 16 MiB transfer) are measured
 * in the same run. Local compute is measured too: each party logs, per round, the time from the
 * previous message's arrival to its next send, and the compute term is the sum over rounds of the two
 * parties' maxima (the critical path of a synchronous protocol; on a shared machine it also holds the
 * time a party waited for a core). The network terms are the model's. The second run goes through
 * the transport's own delay and bandwidth limit (`throttled`). Both parties hold shares made from one seed (a measuring rig), and party 1's process
 * stands in for the dealer (dealer.ts).
 *   node dist/bench/mpc-socket.js [--tokens 512] [--method full|mpcache] [--delay-ms 2] [--mbit 200]
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { encodeFixed } from '../src/mpc/engine.js'
import { decodeStepAttention, mpcacheSummaries, type AttentionMethod, type LayerShares } from '../src/mpc/mpcache.js'
import type { Party } from '../src/mpc/party.js'
import { ChaCha20Prg } from '../src/mpc/prg.js'
import { createWasmRing, type Ring } from '../src/mpc/ring.js'
import { createParty, splitSecret } from '../src/mpc/session.js'
import { connectLoopback, listenLoopback } from '../src/mpc/socket.js'
import { throttled, type Transport } from '../src/mpc/transport.js'
import { randn } from './random.js'

const { values: args } = parseArgs({
  options: {
    party: { type: 'string' },
    port: { type: 'string' },
    tokens: { type: 'string', default: '512' },
    method: { type: 'string', default: 'full' },
    'delay-ms': { type: 'string', default: '2' },
    mbit: { type: 'string', default: '200' },
  },
})
const N = Number(args.tokens)
const METHOD = args.method as AttentionMethod
const DELAY_S = Number(args['delay-ms']) / 1000
const BW = Number(args.mbit) * 1e6
const H = 6, KV = 2, D = 64, LAYERS = 8

function inputs(ring: Ring, id: 0 | 1): LayerShares[] {
  const prg = new ChaCha20Prg(`socket-inputs-${N}`)
  const share = (x: Float32Array): BigInt64Array => splitSecret(encodeFixed(x, 18), prg, ring)[id]
  return Array.from({ length: LAYERS }, (_, l) => ({
    q: share(randn(H * D, 100 + l)),
    keys: Array.from({ length: KV }, (_, h) => share(randn(N * D, 200 + l * 10 + h).map((x) => x * 0.5))),
    values: Array.from({ length: KV }, (_, h) => share(randn(N * D, 300 + l * 10 + h))),
  }))
}

/** one-way latency (s) and bandwidth (bit/s) of the link, party 0 measuring, party 1 echoing */
async function measureLink(t: Transport, id: 0 | 1): Promise<{ latency: number; bandwidth: number }> {
  const one = new BigInt64Array(1)
  const rtts: number[] = []
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now()
    if (id === 0) { t.send(one); await t.recv() } else { await t.recv(); t.send(one) }
    rtts.push(performance.now() - t0)
  }
  // the mean, not the median: scheduling delays on a busy machine are part of what every round pays
  const rtt = rtts.slice(20).reduce((a, b) => a + b, 0) / (rtts.length - 20) / 1000
  const big = new BigInt64Array(2 << 20) // 16 MiB
  let best = Infinity
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now()
    if (id === 0) { t.send(big); await t.recv() } else { await t.recv(); t.send(one) }
    best = Math.min(best, (performance.now() - t0) / 1000)
  }
  return { latency: rtt / 2, bandwidth: (big.byteLength * 8) / Math.max(1e-6, best - rtt) }
}

async function step(p: Party, layers: LayerShares[]): Promise<StepFigures> {
  await p.exchange([new BigInt64Array(1)]) // barrier: both start together
  const c0 = p.cost.snapshot()
  const w0 = p.waitMs
  p.roundCompute = []
  const t0 = performance.now()
  await decodeStepAttention(p, layers, N, D, METHOD)
  const wall = (performance.now() - t0) / 1000
  const mine = new Float64Array(p.roundCompute)
  p.roundCompute = null
  // the step ends with the last send: its compute since the last arrival is this party's tail
  const [theirs] = await p.exchange([new BigInt64Array(mine.buffer)])
  const other = new Float64Array(theirs.slice().buffer)
  let critical = 0
  for (let r = 0; r < mine.length; r++) critical += Math.max(mine[r], other[r] ?? 0)
  return { wall, wait: (p.waitMs - w0) / 1000, rounds: p.cost.total.rounds - c0.rounds - 1, bytes: p.cost.total.bytesSent - c0.bytesSent - mine.byteLength, compute: critical / 1000 }
}

async function partyMain(id: 0 | 1): Promise<void> {
  const ring = await createWasmRing()
  let raw: Transport
  if (id === 0) {
    const l = listenLoopback()
    console.log(JSON.stringify({ port: await l.ready }))
    raw = await l.transport
  } else {
    raw = await connectLoopback(Number(args.port))
  }
  const link = await measureLink(raw, id)
  const layers = inputs(ring, id)
  const p = createParty(id, raw, ring, { trunc: 'one-round' })
  if (METHOD === 'mpcache') for (const L of layers) L.summaries = await mpcacheSummaries(p, L.keys, N, D)
  await step(p, layers) // warm-up: JIT and wasm tiers
  const plain = await step(p, layers)
  const slowLink = throttled(raw, { delaySeconds: DELAY_S, bandwidthBitsPerSecond: BW })
  const slow = createParty(id, slowLink, ring, { trunc: 'one-round', seeds: { seed0: 'throttled0', seed1: 'throttled1' } })
  if (METHOD === 'mpcache') for (const L of layers) L.summaries = await mpcacheSummaries(slow, L.keys, N, D)
  const limited = await step(slow, layers)
  if (id === 0) console.log(JSON.stringify({ link, plain, limited }))
  slowLink.close() // after its queue drains
}

interface StepFigures { wall: number; wait: number; rounds: number; bytes: number; compute: number }

async function parent(): Promise<void> {
  const self = fileURLToPath(import.meta.url)
  const common = ['--tokens', String(N), '--method', METHOD, '--delay-ms', String(DELAY_S * 1000), '--mbit', String(BW / 1e6)]
  const p0 = spawn(process.execPath, [self, '--party', '0', ...common], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  let onPort!: (port: number) => void
  const port = new Promise<number>((r) => (onPort = r))
  p0.stdout.setEncoding('utf8')
  let buf = ''
  p0.stdout.on('data', (s: string) => {
    buf += s
    for (let i; (i = buf.indexOf('\n')) >= 0; buf = buf.slice(i + 1)) {
      const line = buf.slice(0, i)
      const m = JSON.parse(line) as { port?: number }
      if (m.port) onPort(m.port)
      else lines.push(line)
    }
  })
  const p1 = spawn(process.execPath, [self, '--party', '1', '--port', String(await port), ...common], { stdio: ['ignore', 'inherit', 'inherit'] })
  await Promise.all([new Promise((r) => p0.on('exit', r)), new Promise((r) => p1.on('exit', r))])
  const r = JSON.parse(lines[0]) as { link: { latency: number; bandwidth: number }; plain: StepFigures; limited: StepFigures }
  const predict = (f: StepFigures, latency: number, invBw: number): number => f.compute + f.rounds * latency + f.bytes * 8 * invBw
  const rows = [
    ['loopback', r.plain, predict(r.plain, r.link.latency, 1 / r.link.bandwidth)],
    [`throttled ${DELAY_S * 1000} ms, ${BW / 1e6} Mbit/s`, r.limited, predict(r.limited, r.link.latency + DELAY_S, 1 / r.link.bandwidth + 1 / BW)],
  ] as const
  console.log(`private decode step, ${METHOD} attention, ${N} cached tokens, 8 layers; link measured: one-way ${(r.link.latency * 1e3).toFixed(3)} ms, ${(r.link.bandwidth / 1e9).toFixed(2)} Gbit/s`)
  console.log('| link | rounds | sent MiB per party | compute (critical path) s | network model s | predicted s | measured s | error |')
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
  for (const [name, f, pred] of rows) {
    console.log(`| ${name} | ${f.rounds} | ${(f.bytes / 2 ** 20).toFixed(2)} | ${f.compute.toFixed(2)} | ${(pred - f.compute).toFixed(2)} | ${pred.toFixed(2)} | ${f.wall.toFixed(2)} | ${(((pred - f.wall) / f.wall) * 100).toFixed(1)}% |`)
  }
}

if (args.party === undefined) await parent()
else await partyMain(Number(args.party) as 0 | 1)

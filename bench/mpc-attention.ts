/**
 * Communication and modelled latency of one private decode step's attention on the fixture model's
 * shapes (8 layers, 6 query heads, 2 KV heads, head_dim 64), measured by the two-party executor
 * (in-process transport: the byte and round counts are exact; wall time here is both parties on one
 * thread and is not the figure of merit). Full attention, MPCache (dynamic selection with index
 * sharing over 2 layers; its prefill summaries are a one-off and reported apart), and a plain top-k
 * eviction at MPCache's token budget (exact logits + bitonic top-k; its attention recomputes the kept
 * tokens' logits, about 1% of its communication).
 * Ratios are against full attention in the same run; SPU semi2k / ABY3 3-party estimates of the same
 * traced program come from SPU's published cost table (src/mpc/spu-estimate.ts).
 *   node dist/bench/mpc-attention.js [tokens...]     (default 512 1024 2048 4096)
 *   MPC_LAYERS=2 node dist/bench/mpc-attention.js     (one layer pair: a quarter of the step, faster)
 *   MPC_TRUNC=exact-one-round node dist/bench/mpc-attention.js   (truncation protocol, default one-round)
 */
import { CostLog, LAN, WAN, modelledSeconds, subCost, type Cost } from '../src/mpc/cost.js'
import { encodeFixed, TRUNC_MODES, type TruncMode } from '../src/mpc/engine.js'
import { decodeStepAttention, mpcacheSelectedCount, mpcacheSummaries, type AttentionMethod, type LayerShares } from '../src/mpc/mpcache.js'
import type { Party } from '../src/mpc/party.js'
import { ChaCha20Prg } from '../src/mpc/prg.js'
import { formatMB, textTable } from '../src/mpc/report.js'
import { createWasmRing, type Ring } from '../src/mpc/ring.js'
import { createInProcessParties, runBoth, splitSecret } from '../src/mpc/session.js'
import { spuEstimate, spuSeconds } from '../src/mpc/spu-estimate.js'
import { randn } from './random.js'

/** the fixture's 8 layers; MPC_LAYERS=2 measures one index-sharing pair (costs are data-independent,
 * so 8 layers cost exactly 4x a pair) */
const LAYERS = Number(process.env.MPC_LAYERS ?? 8)
const TRUNC = (process.env.MPC_TRUNC ?? 'one-round') as TruncMode
if (!(TRUNC_MODES as readonly string[]).includes(TRUNC)) throw new RangeError(`MPC_TRUNC must be one of ${TRUNC_MODES.join(', ')}, got ${JSON.stringify(TRUNC)}`)
const H = 6
const KV = 2
const D = 64

interface StepResult {
  method: AttentionMethod
  n: number
  tokens: number
  online: Cost
  /** offline bytes party 1 receives (party 0 expands its seed) */
  offline: number
  semi2k: ReturnType<typeof spuEstimate>
  aby3: ReturnType<typeof spuEstimate>
  prefill?: Cost
  wallSeconds: number
}

function layerInputs(ring: Ring, prg: ChaCha20Prg, n: number, party: 0 | 1, layer: number): LayerShares {
  const share = (x: Float32Array): BigInt64Array => splitSecret(encodeFixed(x, 18), prg, ring)[party]
  return {
    q: share(randn(H * D, 1000 + layer)),
    keys: Array.from({ length: KV }, (_, h) => share(randn(n * D, 2000 + layer * 10 + h).map((x) => x * 0.5))),
    values: Array.from({ length: KV }, (_, h) => share(randn(n * D, 3000 + layer * 10 + h))),
  }
}

async function measure(ring: Ring, n: number, method: AttentionMethod): Promise<StepResult> {
  const parties = createInProcessParties(ring, { trunc: TRUNC })
  let prefill: Cost | undefined
  let before: Cost[] = [parties[0].cost.snapshot(), parties[1].cost.snapshot()]
  let trace0 = 0
  const t0 = performance.now()
  let tStep = t0
  await runBoth(parties, async (p: Party) => {
    // both parties draw the same input masks (a test rig: in deployment each holds only its shares)
    const prg = new ChaCha20Prg(`inputs-${n}`)
    const layers = Array.from({ length: LAYERS }, (_, l) => layerInputs(ring, prg, n, p.id, l))
    if (method === 'mpcache') {
      for (const L of layers) L.summaries = await mpcacheSummaries(p, L.keys, n, D)
      if (p.id === 0) prefill = p.cost.snapshot()
    }
    before[p.id] = p.cost.snapshot()
    if (p.id === 0) {
      trace0 = p.cost.kernels.length
      tStep = performance.now()
    }
    await decodeStepAttention(p, layers, n, D, method)
  })
  const wallSeconds = (performance.now() - tStep) / 1000
  for (const p of parties) p.close()
  const online = subCost(parties[0].cost.snapshot(), before[0])
  const p1 = subCost(parties[1].cost.snapshot(), before[1])
  if (p1.rounds !== online.rounds || p1.bytesSent !== online.bytesSent) throw new Error('the two parties\' online costs differ')
  const trace = parties[0].cost.kernels.slice(trace0)
  const tokens = method === 'full' ? n : mpcacheSelectedCount(n)
  void before
  return { method, n, tokens, online, offline: p1.offlineBytes, semi2k: spuEstimate(trace, 'semi2k'), aby3: spuEstimate(trace, 'aby3'), prefill, wallSeconds }
}

export async function benchMpcAttention(lengths: number[]): Promise<StepResult[]> {
  const ring = await createWasmRing()
  const results: StepResult[] = []
  for (const n of lengths) for (const method of ['full', 'mpcache', 'topk'] as AttentionMethod[]) {
    const r = await measure(ring, n, method)
    results.push(r)
    console.error(`  measured ${method} at ${n} tokens in ${r.wallSeconds.toFixed(1)} s`)
  }
  const ms = (c: Cost, net = LAN): string => (modelledSeconds(c, net) * 1000).toFixed(1)
  const rows = results.map((r) => {
    const full = results.find((x) => x.n === r.n && x.method === 'full')!
    return [
      `${r.n} ${r.method}`, String(r.tokens), String(r.online.rounds), formatMB(r.online.bytesSent),
      (full.online.bytesSent / r.online.bytesSent).toFixed(2), formatMB(r.offline),
      ms(r.online, LAN), (modelledSeconds(full.online, LAN) / modelledSeconds(r.online, LAN)).toFixed(2),
      ms(r.online, WAN), (modelledSeconds(full.online, WAN) / modelledSeconds(r.online, WAN)).toFixed(2),
      `${formatMB(r.semi2k.bytesSent)} / ${(spuSeconds(r.semi2k, LAN) * 1000).toFixed(1)}`,
      `${formatMB(r.aby3.bytesSent)} / ${(spuSeconds(r.aby3, LAN) * 1000).toFixed(1)}`,
    ]
  })
  console.log(`one decode step, ${LAYERS} layers x 6 query heads x head_dim 64; costs per party; x = full / method`)
  console.log(textTable(['tokens method', 'attended', 'rounds', 'sent MiB', 'x comm', 'offline MiB', 'LAN ms', 'x LAN', 'WAN ms', 'x WAN', 'semi2k 3PC MiB / LAN ms', 'ABY3 MiB / LAN ms'], rows))
  for (const r of results.filter((x) => x.prefill)) console.log(`MPCache prefill summaries at ${r.n} tokens (one-off, ${LAYERS} layers): ${r.prefill!.rounds} rounds, ${formatMB(r.prefill!.bytesSent)} MiB sent per party`)
  return results
}

export async function run(): Promise<void> {
  await benchMpcAttention([512, 1024])
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const lengths = process.argv.slice(2).map(Number)
  await benchMpcAttention(lengths.length ? lengths : [512, 1024, 2048, 4096])
}

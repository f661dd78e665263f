import { seededRandom } from '../model/sampling.js'
import { checkNumber, checkOptionNames, ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

/**
 * KVShare's cache-aware scheduler (Yang et al. 2025, arXiv 2503.16525, the cache-aware scheduler):
 * among waiting requests, serve first the one whose KV cache hit rate is highest, so requests that
 * reuse much (cheap prefills) do not queue behind full prefills; with aging, so a request that reuses
 * nothing still gets served. Priority = hit rate + wait / agingMs: after agingMs of waiting a request
 * outranks any that arrived agingMs after it, whatever their hit rates (hit rates lie in [0, 1]).
 * Pure, on a virtual clock like continuum.ts: one server, one request at a time (prefill, then decode),
 * a request's hit rate the share of its prompt aligned to a request served before it.
 */

/** One request of a trace. */
export interface ShareRequest {
  id: number
  /** ms on the virtual clock */
  arrival: number
  /** prompt tokens */
  tokens: number
  /** the request it is an edit of (its KV reusable once that one was served), or null */
  source: number | null
  /** prompt tokens aligned to the source's (reused when the source is cached) */
  shared: number
  outputTokens: number
}

export interface ShareSimConfig {
  prefillMsPerToken: number
  decodeMsPerToken: number
  /** share of the reused tokens recomputed anyway (KVShare's ratio; default 0.15) */
  ratio?: number
  policy: 'kvshare' | 'fcfs'
  /** wait that raises a priority by 1, the whole range of hit rates (ms; default 10000); Infinity: no aging */
  agingMs?: number
}

export interface ShareSimResult {
  /** per request (by index in the trace), first token - arrival (ms) */
  ttft: number[]
  meanTtft: number
  /** per request, start of its prefill - arrival (ms) */
  wait: number[]
  /** requests whose source was served before them (their prefill reused it) */
  hits: number
  /** request ids in the order served */
  order: number[]
}

/** The priority of a waiting request: its hit rate now plus its wait over agingMs. */
export function sharePriority(hitRate: number, waitMs: number, agingMs: number): number {
  return hitRate + (Number.isFinite(agingMs) ? waitMs / agingMs : 0)
}

/** prompt tokens a request prefills: all of them on a miss, else the unaligned ones and `ratio` of the aligned */
export function prefillTokens(r: ShareRequest, hit: boolean, ratio: number): number {
  return hit ? r.tokens - r.shared + Math.round(ratio * r.shared) : r.tokens
}

const SHARE_SIM_CONFIG: Record<keyof ShareSimConfig, true> = { prefillMsPerToken: true, decodeMsPerToken: true, ratio: true, policy: true, agingMs: true }

/** Serves the trace on one server and a virtual clock, by the cache-aware priority or first come first served. */
export function simulateShare(requests: readonly ShareRequest[], cfg: ShareSimConfig): ShareSimResult {
  const ratio = cfg.ratio ?? 0.15
  const agingMs = cfg.agingMs ?? 10000
  checkOptionNames('simulateShare', cfg, SHARE_SIM_CONFIG)
  // a string ('0.2') passed the range check (comparisons coerce it) and ran as a number
  checkNumber('simulateShare', 'ratio', ratio, 0, 1)
  checkNumber('simulateShare', 'prefillMsPerToken', cfg.prefillMsPerToken, 0)
  checkNumber('simulateShare', 'decodeMsPerToken', cfg.decodeMsPerToken, 0)
  if (cfg.policy !== 'kvshare' && cfg.policy !== 'fcfs') throw new ReuseError(`simulateShare: policy must be 'kvshare' or 'fcfs', got ${shownValue(cfg.policy)}`)
  if (!(typeof agingMs === 'number' && agingMs > 0)) throw new ReuseError(`simulateShare: agingMs must be positive (Infinity: no aging), got ${shownValue(agingMs)}`)
  const index = new Map(requests.map((r, i) => [r.id, i]))
  requests.forEach((r, i) => {
    if (!(r.shared >= 0 && r.shared <= r.tokens && r.tokens > 0)) throw new ReuseError(`simulateShare: request ${r.id} shares ${r.shared} of ${r.tokens} tokens`)
    if (r.source !== null && !index.has(r.source)) throw new ReuseError(`simulateShare: request ${r.id}'s source ${r.source} is not in the trace`)
    if (index.get(r.id) !== i) throw new ReuseError(`simulateShare: request id ${r.id} appears twice`)
  })
  const served = new Set<number>()
  const waiting = new Set(requests.map((_, i) => i))
  const ttft = new Array<number>(requests.length).fill(0)
  const wait = new Array<number>(requests.length).fill(0)
  const order: number[] = []
  let hits = 0
  let clock = 0
  const hit = (r: ShareRequest) => r.source !== null && served.has(r.source)
  while (waiting.size > 0) {
    let ready = [...waiting].filter((i) => requests[i].arrival <= clock)
    if (ready.length === 0) {
      clock = Math.min(...[...waiting].map((i) => requests[i].arrival))
      ready = [...waiting].filter((i) => requests[i].arrival <= clock)
    }
    const key = (i: number) => {
      const r = requests[i]
      return cfg.policy === 'fcfs' ? -r.arrival : sharePriority(hit(r) ? r.shared / r.tokens : 0, clock - r.arrival, agingMs)
    }
    // the highest key; ties to the earlier arrival, then the earlier in the trace
    const i = ready.reduce((a, b) => (key(b) > key(a) || (key(b) === key(a) && (requests[b].arrival < requests[a].arrival || (requests[b].arrival === requests[a].arrival && b < a))) ? b : a))
    const r = requests[i]
    const h = hit(r)
    if (h) hits++
    wait[i] = clock - r.arrival
    clock += prefillTokens(r, h, ratio) * cfg.prefillMsPerToken
    ttft[i] = clock - r.arrival
    clock += r.outputTokens * cfg.decodeMsPerToken
    served.add(r.id)
    waiting.delete(i)
    order.push(r.id)
  }
  return { ttft, meanTtft: ttft.reduce((a, b) => a + b, 0) / Math.max(1, requests.length), wait, hits, order }
}

/**
 * A synthetic trace of edited request pairs: `pairs` originals of 1000-3000 tokens, each followed by an
 * edit of it (1-10% of its tokens replaced) after an exponential gap (mean `gapMs`, default 5 s: a
 * person edits a prompt), originals a Poisson process of mean interval `intervalMs` (default 2300 ms:
 * near the mean service time of a pair at 0.5 ms a prefill token and 10 ms a decode token, so queues form).
 * @throws ReuseError naming a seed that is not an integer >= 0, pairs not an integer >= 1, or a mean not
 * a finite number >= 0
 */
export function editedPairTrace(seed: number, o: { pairs?: number; intervalMs?: number; gapMs?: number } = {}): ShareRequest[] {
  // pairs: '3' ran (p < '3' coerces), pairs: -1 gave an empty trace
  checkOptionNames('editedPairTrace', o, { pairs: true, intervalMs: true, gapMs: true })
  checkNumber('editedPairTrace', 'seed', seed, 0, Infinity, true)
  checkNumber('editedPairTrace', 'pairs', o.pairs ?? 50, 1, Infinity, true)
  checkNumber('editedPairTrace', 'intervalMs', o.intervalMs ?? 2300, 0)
  checkNumber('editedPairTrace', 'gapMs', o.gapMs ?? 5000, 0)
  const rand = seededRandom(seed)
  const exp = (mean: number) => -mean * Math.log(1 - rand())
  const out: ShareRequest[] = []
  let t = 0
  for (let p = 0; p < (o.pairs ?? 50); p++) {
    t += exp(o.intervalMs ?? 2300)
    const tokens = 1000 + Math.floor(rand() * 2001)
    const edited = Math.max(1, Math.round(tokens * (0.01 + 0.09 * rand())))
    out.push({ id: 2 * p, arrival: t, tokens, source: null, shared: 0, outputTokens: 16 + Math.floor(rand() * 48) })
    out.push({ id: 2 * p + 1, arrival: t + exp(o.gapMs ?? 5000), tokens, source: 2 * p, shared: tokens - edited, outputTokens: 16 + Math.floor(rand() * 48) })
  }
  return out.sort((a, b) => a.arrival - b.arrival || a.id - b.id)
}

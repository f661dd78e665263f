import { seededRandom } from '../model/sampling.js'
import { checkNumber, checkOptionNames, ReuseError } from './errors.js'
import { shownValue } from '../model/errors.js'

/**
 * Continuum (Li et al., 2025, "Continuum: efficient and robust multi-turn LLM agent scheduling with KV
 * cache time-to-live"), as a scheduler on a virtual clock: agent programs alternate LLM calls and tool
 * calls. When a call ends in a tool call, the program's KV is pinned for a time-to-live chosen from the
 * tool's learned durations against the cost of reloading (re-prefilling) the context; it is freed when
 * the TTL runs out or when memory is needed (soonest expiry first), and the budget is never exceeded.
 * Ready calls are served first come first served by program (the program's arrival), not by call.
 * The baseline frees every call's KV when it ends and serves calls in arrival order.
 */

export interface AgentTurn {
  /** tokens the call adds to the context (the tool result and the next instruction) */
  newTokens: number
  /** tokens the call generates (they join the context) */
  outputTokens: number
  /** the tool called after this turn, and how long it runs (ms); none after the last turn */
  tool: string | null
  toolMs: number
}

export interface AgentProgram {
  id: number
  /** ms on the virtual clock */
  arrival: number
  turns: AgentTurn[]
}

export interface ContinuumConfig {
  /** KV memory, tokens */
  budgetTokens: number
  prefillMsPerToken: number
  decodeMsPerToken: number
  policy: 'continuum' | 'evict-on-finish'
  /** every tool call outlasts the TTL chosen for it (the worst case for pinning) */
  adversarial?: boolean
}

export interface ContinuumResult {
  /** per program, finish - arrival (ms) */
  jct: number[]
  meanJct: number
  /** most tokens held at once (running call + pinned) */
  peakTokens: number
  /** calls whose context was found pinned */
  hits: number
  calls: number
}

/**
 * The TTL worth pinning a context for, given the tool's observed durations: the t among them that
 * maximises P(duration <= t) x reloadMs - share x t, where share is the fraction of memory the context
 * holds (pinning it for t ms costs that share of the machine for t). 0 (free at once) when no
 * observation makes pinning pay, or none exists yet.
 * @throws ReuseError naming observed when it is not an array of finite durations >= 0, or reloadMs or
 * share when not a finite number >= 0
 */
export function chooseTtl(observed: readonly number[], reloadMs: number, share: number): number {
  // a string was spread into its characters and every gain came out NaN: a TTL of 0, silently
  if (!Array.isArray(observed)) throw new ReuseError(`chooseTtl: observed must be an array of tool durations (ms), got ${shownValue(observed)}`)
  observed.forEach((d, i) => checkNumber('chooseTtl', `observed[${i}]`, d, 0))
  checkNumber('chooseTtl', 'reloadMs', reloadMs, 0)
  checkNumber('chooseTtl', 'share', share, 0)
  const ds = [...observed].sort((a, b) => a - b)
  let best = 0
  let gain = 0
  ds.forEach((t, i) => {
    const g = ((i + 1) / ds.length) * reloadMs - share * t
    if (g > gain) (gain = g), (best = t)
  })
  return best
}

interface Pinned {
  program: number
  tokens: number
  expires: number
}

const CONTINUUM_CONFIG: Record<keyof ContinuumConfig, true> = { budgetTokens: true, prefillMsPerToken: true, decodeMsPerToken: true, policy: true, adversarial: true }

/** Runs the programs on one server (one call at a time) and a virtual clock. */
export function simulateAgents(programs: readonly AgentProgram[], cfg: ContinuumConfig): ContinuumResult {
  checkOptionNames('simulateAgents', cfg, CONTINUUM_CONFIG)
  if (!(typeof cfg.budgetTokens === 'number' && cfg.budgetTokens > 0)) throw new ReuseError(`simulateAgents: budgetTokens must be positive, got ${shownValue(cfg.budgetTokens)}`)
  checkNumber('simulateAgents', 'prefillMsPerToken', cfg.prefillMsPerToken, 0)
  checkNumber('simulateAgents', 'decodeMsPerToken', cfg.decodeMsPerToken, 0)
  // any other policy ran as evict-on-finish
  if (cfg.policy !== 'continuum' && cfg.policy !== 'evict-on-finish') throw new ReuseError(`simulateAgents: policy must be 'continuum' or 'evict-on-finish', got ${shownValue(cfg.policy)}`)
  const P = programs.length
  const context = new Array<number>(P).fill(0)
  const next = new Array<number>(P).fill(0)
  const ready = programs.map((p) => p.arrival) // when each program's next call is ready
  const done = new Array<number>(P).fill(-1)
  const durations = new Map<string, number[]>()
  let pinned: Pinned[] = []
  let clock = 0
  let peak = 0
  let hits = 0
  let calls = 0
  const held = () => pinned.reduce((s, x) => s + x.tokens, 0)
  for (;;) {
    const waiting = programs.map((_, i) => i).filter((i) => done[i] < 0)
    if (waiting.length === 0) break
    // the next call: among those ready by now, by program arrival (Continuum) or by call readiness (FCFS)
    const earliest = Math.min(...waiting.map((i) => ready[i]))
    clock = Math.max(clock, earliest)
    const now = waiting.filter((i) => ready[i] <= clock)
    const key = (i: number) => (cfg.policy === 'continuum' ? programs[i].arrival : ready[i])
    const i = now.reduce((a, b) => (key(b) < key(a) || (key(b) === key(a) && b < a) ? b : a))
    pinned = pinned.filter((x) => x.expires >= clock)
    const turn = programs[i].turns[next[i]]
    const mine = pinned.find((x) => x.program === i)
    pinned = pinned.filter((x) => x !== mine)
    const cachedTokens = mine ? mine.tokens : 0
    if (mine) hits++
    const total = context[i] + turn.newTokens + turn.outputTokens
    if (total > cfg.budgetTokens) throw new ReuseError(`simulateAgents: program ${i} needs ${total} tokens, over the budget of ${cfg.budgetTokens}`)
    // room for this call: free other programs' pinned KV, soonest expiry first
    pinned.sort((a, b) => a.expires - b.expires)
    while (held() + total > cfg.budgetTokens) pinned.shift()
    peak = Math.max(peak, held() + total)
    const prefill = context[i] + turn.newTokens - cachedTokens
    clock += prefill * cfg.prefillMsPerToken + turn.outputTokens * cfg.decodeMsPerToken
    calls++
    context[i] = total
    next[i]++
    if (!turn.tool || next[i] === programs[i].turns.length) {
      done[i] = clock
      continue
    }
    const seen = durations.get(turn.tool) ?? []
    let toolMs = turn.toolMs
    if (cfg.policy === 'continuum') {
      const ttl = chooseTtl(seen, total * cfg.prefillMsPerToken, total / cfg.budgetTokens)
      if (cfg.adversarial) toolMs = Math.max(toolMs, ttl + 1)
      if (ttl > 0) pinned.push({ program: i, tokens: total, expires: clock + ttl })
    }
    durations.set(turn.tool, [...seen, toolMs])
    ready[i] = clock + toolMs
  }
  const jct = programs.map((p, i) => done[i] - p.arrival)
  return { jct, meanJct: jct.reduce((a, b) => a + b, 0) / P, peakTokens: peak, hits, calls }
}

/**
 * A synthetic agent trace: `programs` programs arriving over `spreadMs`, 10-30 turns each, tools with
 * heavy-tailed (log-normal) durations of their own median, contexts growing by each turn's tokens.
 * @throws ReuseError naming a seed that is not an integer >= 0, programs not an integer >= 1, or spreadMs
 * not a finite number >= 0
 */
export function syntheticAgentTrace(seed: number, o: { programs?: number; spreadMs?: number } = {}): AgentProgram[] {
  // programs: -1 gave an empty trace (an array's length clamps at 0), whose mean JCT is NaN
  checkOptionNames('syntheticAgentTrace', o, { programs: true, spreadMs: true })
  checkNumber('syntheticAgentTrace', 'seed', seed, 0, Infinity, true)
  checkNumber('syntheticAgentTrace', 'programs', o.programs ?? 8, 1, Infinity, true)
  checkNumber('syntheticAgentTrace', 'spreadMs', o.spreadMs ?? 2000, 0)
  const rand = seededRandom(seed)
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand())
  const tools = [
    { name: 'search', median: 400 },
    { name: 'python', median: 1500 },
    { name: 'browser', median: 3000 },
  ]
  return Array.from({ length: o.programs ?? 8 }, (_, id) => {
    const n = 10 + Math.floor(rand() * 21)
    const turns: AgentTurn[] = Array.from({ length: n }, (_, t) => {
      const tool = tools[Math.floor(rand() * tools.length)]
      const last = t === n - 1
      return {
        newTokens: t === 0 ? 400 + Math.floor(rand() * 400) : 30 + Math.floor(rand() * 90),
        outputTokens: 20 + Math.floor(rand() * 60),
        tool: last ? null : tool.name,
        toolMs: last ? 0 : tool.median * Math.exp(1.0 * normal()),
      }
    })
    return { id, arrival: rand() * (o.spreadMs ?? 2000), turns }
  })
}

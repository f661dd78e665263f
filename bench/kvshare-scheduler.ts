// KVShare's cache-aware scheduler against first come first served, on synthetic traces of edited
// request pairs and a virtual clock (src/reuse/kvshare-scheduler.ts): mean time to first token per
// seed, their ratio, and the longest wait under each. Costs: --prefill-ms per prefilled token (the
// edit prefills its unaligned tokens and 15% of the aligned ones), --decode-ms per generated token.
//   npm run build && node dist/bench/kvshare-scheduler.js [--seeds 10] [--pairs 100] [--interval-ms 2300]
//     [--gap-ms 5000] [--aging-ms 10000] [--prefill-ms 0.5] [--decode-ms 10]
import { editedPairTrace, simulateShare } from '../src/reuse/kvshare-scheduler.js'
import { arg, median } from './reuse-common.js'

const SEEDS = Number(arg('seeds', '10'))
const trace = { pairs: Number(arg('pairs', '100')), intervalMs: Number(arg('interval-ms', '2300')), gapMs: Number(arg('gap-ms', '5000')) }
const cost = { prefillMsPerToken: Number(arg('prefill-ms', '0.5')), decodeMsPerToken: Number(arg('decode-ms', '10')) }
const agingMs = Number(arg('aging-ms', '10000'))

console.log(`KVShare scheduler vs FCFS: ${trace.pairs} edited pairs a trace, pairs every ${trace.intervalMs} ms, edits ${trace.gapMs} ms later (means), aging ${agingMs} ms`)
console.log(['seed', 'KVShare mean TTFT', 'FCFS mean TTFT', 'ratio', 'KVShare max wait', 'FCFS max wait'].map((h, i) => (i ? h.padStart(18) : h.padEnd(5))).join(''))
const ratios: number[] = []
for (let seed = 1; seed <= SEEDS; seed++) {
  const t = editedPairTrace(seed, trace)
  const a = simulateShare(t, { ...cost, policy: 'kvshare', agingMs })
  const b = simulateShare(t, { ...cost, policy: 'fcfs' })
  ratios.push(a.meanTtft / b.meanTtft)
  const cells = [a.meanTtft, b.meanTtft].map((x) => `${x.toFixed(0)} ms`).concat([`${(a.meanTtft / b.meanTtft).toFixed(3)}x`], [Math.max(...a.wait), Math.max(...b.wait)].map((x) => `${x.toFixed(0)} ms`))
  console.log([String(seed).padEnd(5), ...cells.map((c) => c.padStart(18))].join(''))
}
console.log(`median ratio ${median(ratios).toFixed(3)}x, worst ${Math.max(...ratios).toFixed(3)}x (below 1: KVShare's scheduler gives the lower mean time to first token)`)

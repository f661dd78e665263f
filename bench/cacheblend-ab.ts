// CacheBlend's time to first token under two builds of kvkit in one process, alternating on the same
// prompts (cross-chunk 15% at check layer 2, chunks after the BOS): an A/B of a change to the reuse path
// that the machine's drift over separate runs would swamp. Wall and CPU time (process.cpuUsage, less of
// the other processes' load) from prepare to the first token; answers and recomputed rows compared.
//   node dist/bench/cacheblend-ab.js OTHER/dist [--prompts vt:2,passkey:1,vt:0] [--rounds 3]
// OTHER/dist: another checkout's built dist (the base); this script's own build is the new side.
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { MemoryChunkStore } from '../src/reuse/chunk-kv.js'
import { promptSample } from '../src/eval/prompts-file.js'
import type { TaskName } from '../src/eval/tasks.js'
import { answer, arg, fixture, median, split } from './reuse-common.js'

type Side = { CacheBlend: typeof CacheBlend; MemoryChunkStore: typeof MemoryChunkStore }
interface Row { task: string; index: number; wall: number; cpu: number; text: string; rows: string }

const baseDir = process.argv[2]
if (!baseDir || baseDir.startsWith('--')) throw new RangeError('cacheblend-ab: give the base build (another checkout\'s dist folder) first')
const PROMPTS = arg('prompts', 'vt:2,passkey:1,vt:0').split(',').map((p) => p.split(':')) as [TaskName, string][]
const ROUNDS = Number(arg('rounds', '3'))

const base: Side = { ...(await import(`${baseDir}/src/reuse/cacheblend.js`)), ...(await import(`${baseDir}/src/reuse/chunk-kv.js`)) }
const sides: Record<'base' | 'new', Side> = { base, new: { CacheBlend, MemoryChunkStore } }
const { model, builder } = await fixture()
const rows: Record<'base' | 'new', Row[]> = { base: [], new: [] }
for (const [task, i] of PROMPTS) {
  const s = promptSample(builder.build(task, 4096, 0, Number(i)))
  const { chunks } = split(s, 6)
  for (let round = 0; round < ROUNDS; round++)
    for (const k of round % 2 ? (['new', 'base'] as const) : (['base', 'new'] as const)) {
      const side = sides[k]
      const store = new side.MemoryChunkStore()
      // a warm store, as CacheBlend reuses
      await new side.CacheBlend(model, { store, chunkPrefix: 'bos' }).prepare(chunks).then((c) => c.dispose())
      const blend = new side.CacheBlend(model, { store, chunkPrefix: 'bos', ratio: 0.15, checkLayer: 2, selection: 'cross-chunk' })
      let recomputed = ''
      const c0 = process.cpuUsage()
      const r = await answer(model, s.prompt_ids, s.answer_ids.length + 3, {}, async () => {
        const ctx = await blend.prepare(chunks)
        recomputed = ctx.report.recomputed.join(',')
        return { reuse: ctx }
      })
      const cpu = process.cpuUsage(c0)
      rows[k].push({ task, index: Number(i), wall: r.ttftMs, cpu: (cpu.user + cpu.system) / 1000, text: r.text, rows: recomputed })
    }
}
rows.base.forEach((a, j) => {
  const b = rows.new[j]
  console.log(`${a.task} #${a.index}: wall ${a.wall.toFixed(0)} -> ${b.wall.toFixed(0)} ms, CPU ${a.cpu.toFixed(0)} -> ${b.cpu.toFixed(0)} ms, same answer ${a.text === b.text}, same rows ${a.rows === b.rows}`)
})
const ratio = (f: (r: Row) => number) => median(rows.base.map((a, j) => f(rows.new[j]) / f(a))).toFixed(3)
console.log(`new / base, median of ${rows.base.length} pairs: CPU ${ratio((r) => r.cpu)}, wall ${ratio((r) => r.wall)}`)
model.dispose()

/**
 * The KV store's compaction on the worker pool: a one-shot decision compacts every (layer, KV head)
 * stream, and each stream's compaction (compactRowsKV) is in place and ordered (a row moves towards the
 * front, onto rows already read), so a call is never split: whole heads go to threads, cut by the bytes
 * they move. Every row ends where compactRowsKV on one thread puts it.
 */
import type { CompactCall, KernelBackend } from '../backend.js'
import type { Job, Task, ThreadPool } from './pool.js'
import { JobKind, MAX_SUB, MAX_TASKS } from './protocol.js'
import { splitByCost } from './split.js'
import { MIN_PART_MACS, runRegions } from './kernels.js'

/**
 * What one byte moved counts as against BackendOptions.minPartMacs: half a multiply-add, so with the
 * default 2^15 a thread's share moves at least 64 KiB. A region costs the calling thread a few
 * microseconds (the tasks written, the workers woken, the join), about what copying 64 KiB takes, so a
 * decode step's compaction of a few rows a head stays on the calling thread.
 */
export const BYTES_PER_MAC = 2

/**
 * compactRowsKVBatch over `pool`, each call the same kernel as one thread's (`base.compactRowsKV`): a
 * batch moving fewer than 2 x minPartMacs x BYTES_PER_MAC bytes stays on the calling thread.
 */
export function threadedCompaction(base: Pick<KernelBackend, 'compactRowsKV'>, pool: Pick<ThreadPool, 'threads' | 'run'>, minPartMacs = MIN_PART_MACS): Required<Pick<KernelBackend, 'compactRowsKVBatch'>> {
  const job = (c: CompactCall): Job => ({ kind: JobKind.CompactRowsKV, args: [c.kTable, c.vTable, c.pageTokens, c.kRowBytes, c.vRowBytes, c.keep, c.nKeep] })
  return {
    compactRowsKVBatch(calls) {
      const costs = calls.map((c) => c.moved * (c.kRowBytes + c.vRowBytes))
      const bytes = costs.reduce((a, b) => a + b, 0)
      const parts = Math.min(pool.threads, calls.length, MAX_TASKS, Math.floor(bytes / (minPartMacs * BYTES_PER_MAC)))
      if (parts < 2) {
        for (const c of calls) base.compactRowsKV(c.kTable, c.vTable, c.pageTokens, c.kRowBytes, c.vRowBytes, c.keep, c.nKeep)
        return
      }
      const tasks: Task[] = []
      for (const [from, to] of splitByCost(costs, parts)) {
        for (let i = from; i < to; i += MAX_SUB) tasks.push(calls.slice(i, Math.min(to, i + MAX_SUB)).map(job))
      }
      // some 2048 heads and more (MAX_TASKS tasks of MAX_SUB calls; 70 layers x 32 KV heads make 280
      // tasks on 4 threads) are more than one region holds: several regions in turn
      runRegions(pool, tasks)
    },
  }
}

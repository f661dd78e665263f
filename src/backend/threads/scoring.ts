/**
 * Key scoring split across the worker pool by keys: what selection (Quest, TokenSelect, ShadowKV, DELTA),
 * observation windows and eviction scorers call for one KV head at a time, over every key of a long
 * context. Each thread scores a contiguous run of whole pages with the same wasm kernel as one thread,
 * all the query heads of the group at once (a key row is read once for all of them), writing its part of
 * each head's row of the output in place (the kernels' Strided forms), so the scores are identical bit
 * for bit: a piece starts on a page boundary and at a multiple of 4 keys (the float kernels' row tiles)
 * and of 32 (the packed kernels' token groups, which pages hold whole).
 */
import { packedIntScratch, type KernelBackend, type PackedKernels } from '../backend.js'
import type { Job, ThreadPool } from './pool.js'
import { JobKind, MAX_TASKS } from './protocol.js'
import { partsFor } from './kernels.js'
import { splitRange } from './split.js'
import { checkKeyGroup } from '../../cache/formats.js'

type Scoring = Pick<KernelBackend, 'scoreKeys' | 'scoreKeysF16'> & Partial<Pick<PackedKernels, 'scorePackedKeys' | 'scorePackedKeysInt'>>

/**
 * keys a piece's length is a multiple of: whole pages, whole row tiles (4) and whole token groups (32;
 * a page holds whole groups of 64 or 128 too, so pieces of whole pages hold whole groups)
 */
function pieceKeys(pageTokens: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a)
  return (pageTokens / gcd(pageTokens, 32)) * 32
}

/**
 * The scoring kernels of `base` run as parallel regions of `pool` once a call holds at least
 * 2 x minPartMacs multiply-adds (qHeads x n x d); smaller calls, and calls whose keys fit in one piece,
 * stay on the calling thread. Arguments and results as the kernels' (backend.ts).
 */
export function threadedScoring(base: Scoring, pool: ThreadPool, minPartMacs: number): Scoring {

  /**
   * Runs `job(k0, k1, out)` for each piece [k0, k1) of the n keys (out: where the piece's first score
   * of head 0 goes), or `oneThread()` when the call is too small to split. `scratchFloats`: each thread's
   * kernel scratch.
   */
  const split = (qHeads: number, d: number, pageTokens: number, n: number, out: number, scratchFloats: number, job: (k0: number, k1: number, out: number) => Job, oneThread: () => void): void => {
    const unit = pieceKeys(pageTokens)
    const parts = Math.min(partsFor(qHeads * n * d, pool.threads, minPartMacs), Math.ceil(n / unit), MAX_TASKS)
    if (parts < 2) return oneThread()
    pool.run(splitRange(n, parts, unit).map(([k0, k1]) => [job(k0, k1, out + k0 * 4)]), scratchFloats ? { bytes: scratchFloats * 4 } : undefined)
  }
  // a piece's page table starts at its first page
  const page = (table: number, pageTokens: number, k0: number) => table + (k0 / pageTokens) * 4

  const scored: Scoring = {
    scoreKeys(q, qHeads, d, table, pageTokens, n, scale, out) {
      split(qHeads, d, pageTokens, n, out, 0,
        (k0, k1, o) => ({ kind: JobKind.ScoreKeys, args: [q, qHeads, d, page(table, pageTokens, k0), pageTokens, k1 - k0, 0, o, n], scale }),
        () => base.scoreKeys(q, qHeads, d, table, pageTokens, n, scale, out))
    },
    scoreKeysF16(q, qHeads, d, table, pageTokens, n, scale, out) {
      split(qHeads, d, pageTokens, n, out, 0,
        (k0, k1, o) => ({ kind: JobKind.ScoreKeysF16, args: [q, qHeads, d, page(table, pageTokens, k0), pageTokens, k1 - k0, 0, o, n], scale }),
        () => base.scoreKeysF16(q, qHeads, d, table, pageTokens, n, scale, out))
    },
  }
  const { scorePackedKeys: packed, scorePackedKeysInt: int } = base
  if (packed) {
    scored.scorePackedKeys = (q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, scratch, group = 32) =>
      split(qHeads, d, pageTokens, n, out, qHeads * (d + 1),
        (k0, k1, o) => ({ kind: JobKind.ScorePackedKeys, args: [q, qHeads, d, page(table, pageTokens, k0), pageTokens, k1 - k0, bits, hi, 0, o, n, 0, checkKeyGroup(group, 'scorePackedKeys: group', RangeError)], scale }),
        () => packed(q, qHeads, d, table, pageTokens, n, bits, hi, scale, out, scratch, group))
  }
  if (int) {
    scored.scorePackedKeysInt = (q, qHeads, d, table, pageTokens, n, bits, scale, out, scratch, group = 32) =>
      split(qHeads, d, pageTokens, n, out, packedIntScratch(qHeads, d, group),
        (k0, k1, o) => ({ kind: JobKind.ScorePackedKeysInt, args: [q, qHeads, d, page(table, pageTokens, k0), pageTokens, k1 - k0, bits, checkKeyGroup(group, 'scorePackedKeysInt: group', RangeError), 0, o, n, 0], scale }),
        () => int(q, qHeads, d, table, pageTokens, n, bits, scale, out, scratch, group))
  }
  return scored
}

/**
 * How a decode step's attention (one query token, every KV head of a layer) is cut across threads: by
 * query heads, or by keys (split-K, Flash-Decoding: Dao, Haziza, Massa, Sizov 2023; flash-attention's
 * num_splits). Splitting by heads gives the one-thread results bit for bit, but a small model has few
 * heads: the fixture's 6 query heads in 2 KV groups of 3 keep at most 2 threads busy, however long the
 * context. Splitting by keys gives every thread a contiguous range of one group's keys; each range is a
 * partial attention (its output and log-sum-exp), and merge-partials.ts combines them on the calling
 * thread after the region. That changes the order of the softmax sums, so the result is the one-thread
 * result within float32 rounding, not bit for bit.
 *
 * The choice is by cost, in the kernel's multiply-adds (attention-causal.ts):
 * - a unit of work is a row block: up to 4 query heads of one KV head, which the kernel scores and
 *   accumulates together (it computes all 4 rows even for fewer heads, and reads each key once for
 *   them), costing 4 x keys x (kd + vd); the head split never cuts inside a row block, since a block cut
 *   in two costs each thread the whole block;
 * - heads: row blocks cut into `parts` contiguous pieces of near-equal cost (splitByCost); its time is
 *   the largest piece;
 * - keys: the row blocks' keys in sequence cut into `parts` pieces of near-equal cost (cutByCost), at
 *   multiples of 64 keys (the kernel's tiles) and of the page; its time is the largest piece plus the
 *   merge, MERGE_MACS a partial output value, run by the calling thread alone;
 * - keys are chosen when they are faster and each piece holds at least MIN_SPLIT_KEYS keys.
 * For the fixture (2 KV heads of 3 query heads, kd = vd = 64): 2 threads always split by heads (one
 * group each: already even); 3 threads split by keys from 384 keys of context (256 a thread), 4 from
 * 512, 16 from 2048.
 */
import { cutByCost, piecesOf, splitByCost } from './split.js'

/** query rows the attention kernel scores and accumulates together (attendRows' row blocks) */
export const ROW_BLOCK = 4
/** the attention kernel's key tile: key pieces start at multiples of it, so the tiles meet the same keys as on one thread */
export const KEY_TILE = 64
/**
 * Least keys a thread's piece of a key split holds. A piece's fixed costs are the kernel's epilogue
 * (normalising 4 x vd values, a log) and its share of the merge (4 x vd multiply-adds in float64
 * JavaScript on the calling thread, while the other threads wait); at 256 keys the piece is 4 x 256 x
 * (kd + vd) = 2^17 multiply-adds for kd = vd = 64, some 30 us on a core, and those costs stay near 1 %.
 * Below it, decode stays split by heads and bit for bit the one-thread result.
 */
export const MIN_SPLIT_KEYS = 256
/** what merging one partial output value costs, in kernel multiply-adds (float64 scalar JavaScript against the kernel's 4-lane SIMD) */
export const MERGE_MACS = 8

/** The shape of one decode call (one KV head): hq query heads over `keys` keys of kd and vd floats. */
export interface DecodeShape {
  hq: number
  keys: number
  kd: number
  vd: number
  /** key pieces start at multiples of this (a dense call's page boundary times whole tiles; a listed call's tile) */
  keyAlign: number
}

/** One kernel call of a split: query heads [h0, h1) of call `call` over its keys [k0, k1). */
export interface DecodeJob {
  call: number
  h0: number
  h1: number
  k0: number
  k1: number
}

/** The split chosen: per thread's piece, its kernel calls in order. */
export interface DecodePlan {
  by: 'heads' | 'keys'
  pieces: DecodeJob[][]
}

/** keyAlign of a dense call over pages of `pageTokens` rows: whole pages, at least a tile */
export function denseKeyAlign(pageTokens: number): number {
  return Math.ceil(KEY_TILE / pageTokens) * pageTokens
}

interface RowBlock {
  call: number
  h0: number
  h1: number
  keys: number
  /** kernel multiply-adds a key of the block costs */
  perKey: number
}

function rowBlocks(calls: readonly DecodeShape[]): RowBlock[] {
  const blocks: RowBlock[] = []
  calls.forEach((c, call) => {
    for (let h0 = 0; h0 < c.hq; h0 += ROW_BLOCK) blocks.push({ call, h0, h1: Math.min(c.hq, h0 + ROW_BLOCK), keys: c.keys, perKey: ROW_BLOCK * (c.kd + c.vd) })
  })
  return blocks
}

/** row blocks cut into pieces of whole blocks; consecutive blocks of one call become one job */
function byHeads(blocks: readonly RowBlock[], parts: number): { pieces: DecodeJob[][]; time: number } {
  const costs = blocks.map((b) => b.keys * b.perKey)
  let time = 0
  const pieces = splitByCost(costs, parts).map(([from, to]) => {
    const jobs: DecodeJob[] = []
    let cost = 0
    for (let i = from; i < to; i++) {
      const b = blocks[i]
      cost += costs[i]
      const last = jobs[jobs.length - 1]
      if (last && last.call === b.call) last.h1 = b.h1
      else jobs.push({ call: b.call, h0: b.h0, h1: b.h1, k0: 0, k1: b.keys })
    }
    time = Math.max(time, cost)
    return jobs
  })
  return { pieces, time }
}

/** the row blocks' keys cut into pieces of near-equal cost; time includes the merge of the partial jobs */
function byKeys(calls: readonly DecodeShape[], blocks: readonly RowBlock[], parts: number): { pieces: DecodeJob[][]; time: number } {
  const lengths = blocks.map((b) => b.keys)
  const cuts = cutByCost(lengths, blocks.map((b) => b.perKey), parts, blocks.map((b) => calls[b.call].keyAlign))
  let time = 0
  let merge = 0
  const pieces = piecesOf(cuts, lengths).map((spans) => {
    let cost = 0
    const jobs = spans.map(([i, k0, k1]): DecodeJob => {
      const b = blocks[i]
      cost += (k1 - k0) * b.perKey
      if (k1 - k0 < b.keys) merge += (b.h1 - b.h0) * calls[b.call].vd * MERGE_MACS
      return { call: b.call, h0: b.h0, h1: b.h1, k0, k1 }
    })
    time = Math.max(time, cost)
    return jobs
  })
  return { pieces: pieces.filter((p) => p.length > 0), time: time + merge }
}

/**
 * The split of a decode batch (calls: one per KV head, T = 1) into at most `parts` pieces, by heads or
 * by keys, whichever costs less (module comment). Every (call, head, key) lies in exactly one job.
 */
export function decodePlan(calls: readonly DecodeShape[], parts: number): DecodePlan {
  const blocks = rowBlocks(calls)
  const heads = byHeads(blocks, parts)
  let keys = 0
  for (const b of blocks) keys += b.keys
  if (parts < 2 || keys / parts < MIN_SPLIT_KEYS) return { by: 'heads', pieces: heads.pieces }
  const split = byKeys(calls, blocks, parts)
  return split.time < heads.time ? { by: 'keys', pieces: split.pieces } : { by: 'heads', pieces: heads.pieces }
}

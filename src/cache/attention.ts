import type { Heap } from '../backend/heap.js'
import { packedAttendScratch, type Backend, type PackedKernels } from '../backend/backend.js'
import { referencePackedKernels } from '../backend/reference/packed-kernels.js'
import { formatInfo, kernelBits, valueGroupFor } from './formats.js'
import { toBasis, type KeyBasis } from './basis.js'
import { attendPackedCall, attendScratchFloats, type AttendCall, type GatheredCall, type PackedAttendCall } from '../backend/model-kernels.js'
import { mergePartials } from '../backend/merge-partials.js'
import type { HeadSegment } from './types.js'
import type { PagedKVCache } from './paged-cache.js'
import { CacheError } from './errors.js'
import type { PageFormat } from './formats.js'

/** Rotates rows in place: x [rows][heads][d] with one position per row (RoPE, supplied by the model). */
export type Rotate = (x: number, rows: number, heads: number, positions: ArrayLike<number>) => void

export interface CacheAttention {
  layer: number
  /** byte pointer to the queries [T][qHeads][d]: post-RoPE, or pre-RoPE when the cache keeps pre-RoPE keys */
  q: number
  T: number
  qHeads: number
  /** byte pointer to the output [T][qHeads][d] */
  out: number
  scale: number
  /** RoPE for caches that store keys before it: keys at cache slots 0..n-1, queries at n-T+t */
  rotate?: Rotate
  /**
   * Selection (decode, T = 1): per KV head, the slots to attend to (ascending, in range), or null for all.
   * Post-RoPE heads in one segment go through the kernels' gathered causal attention (the dense decode's
   * tiles, so selecting every slot equals no selection bit for bit); others are gathered here.
   */
  select?: (Int32Array | null)[]
  /**
   * Keys a selector rebuilt itself, per KV head (ShadowKV: from low-rank factors, re-rotated): 0 for the
   * cache's keys, else a byte pointer to post-RoPE rows [m][headDim], one for each selected slot held
   * outside the arena (m of them, in slot order), in the format those rows are fetched in (float16 for
   * float16 pages, else float32). They stand in for the stored keys of those slots, which are then
   * neither fetched nor read: only the values move between tiers. Needs `select` for the head, a
   * post-RoPE cache, and whole key rows outside the arena.
   */
  rebuiltKeys?: number[]
  /** byte pointer to [kvHeads][T * group] log-sum-exp per query row (row t * group + h), for mass hooks */
  lse?: number
}

interface Part {
  kTable: number
  vTable: number
  pageTokens: number
  n: number
  kd: number
  channels: Int32Array | null
  /** query t sees the first min(n, visible0 + t) rows */
  visible0: number
  /**
   * kernel bits codes of a packed segment's keys and values, attended in place by attendPacked, or by
   * attendSign where the keys are int2+sign (`basis`; kHi its int2 channels, group its token group,
   * vGroup the values' channel group)
   */
  packed?: { kBits: number; kHi: number; vBits: number; basis: KeyBasis | null; group: number; vGroup: number }
  /** element type of the rows (float16 parts go to the F16 kernels) */
  format: PageFormat
}

/** the causal kernel of the attention family for a row format */
function causalKernel(backend: Backend, format: PageFormat): Backend['attendCausal'] {
  if (format === 'float16') return backend.attendCausalF16
  if (format === 'float32') return backend.attendCausal
  throw new CacheError(`attendCache: the kernels of this build do not read ${format} pages`)
}

/**
 * Attention of T new tokens over the cache of one layer, every KV head: causal over the chunk just
 * appended, dense or over selected slots, keys post-RoPE or rotated here from cache positions, and
 * channel-pruned prefixes combined with the whole rows by a log-sum-exp merge of the two partial results.
 * Temporary buffers come from the arena and go back before returning.
 */
export function attendCache(backend: Backend, cache: PagedKVCache, a: CacheAttention, staged?: StagedRows): void {
  const heap = backend.heap
  const { kvHeads, headDim: d, keys } = cache.options
  const group = a.qHeads / kvHeads
  if (!Number.isInteger(group) || group < 1) throw new CacheError(`attendCache: qHeads ${a.qHeads} is not a multiple of the cache's ${kvHeads} KV heads`)
  if (!Number.isInteger(a.T) || a.T < 1) throw new CacheError(`attendCache: T must be a positive integer, got ${a.T}`)
  if (a.select && a.T !== 1) throw new CacheError(`attendCache: selection runs on decode steps (T = 1), got T = ${a.T}`)
  const preRope = keys === 'pre-rope'
  if (preRope && !a.rotate) throw new CacheError('attendCache: the cache keeps pre-RoPE keys, so a rotate function is needed')
  const qStride = a.qHeads * d
  const temps: number[] = []
  const tmp = (floats: number) => {
    const p = heap.alloc(Math.max(1, floats) * 4, 64)
    temps.push(p)
    return p
  }
  try {
    const scratch = tmp(attendScratchFloats(d, a.T * group))
    const dense: AttendCall[] = []
    const gathered: GatheredCall[] = []
    const packedCalls: PackedAttendCall[] = []
    // a head of several parts merges them once every part is computed (its packed part may wait for the batch)
    const merges: (() => void)[] = []
    for (let g = 0; g < kvHeads; g++) {
      const segs = cache.segments(a.layer, g)
      const n = segs.reduce((s, x) => s + x.n, 0)
      if (n < a.T) throw new CacheError(`attendCache: (layer ${a.layer}, head ${g}) holds ${n} tokens, fewer than the ${a.T} queries appended`)
      const sel = a.select?.[g] ?? null
      const rebuilt = a.rebuiltKeys?.[g] ?? 0
      if (rebuilt) checkRebuilt(segs, sel, preRope, a.layer, g)
      let q = a.q + g * group * d * 4
      let qs = qStride
      if (preRope) {
        // the group's queries, rotated to their cache positions n-T+t
        const qr = tmp(a.T * group * d)
        for (let t = 0; t < a.T; t++) heap.F32.copyWithin((qr >> 2) + t * group * d, (q >> 2) + t * qStride, (q >> 2) + t * qStride + group * d)
        const qpos = Array.from({ length: a.T }, (_, t) => (sel ? sel.length - 1 : n - a.T) + t)
        a.rotate!(qr, a.T, group, qpos)
        q = qr
        qs = group * d
      }
      const out = a.out + g * group * d * 4
      const lse = a.lse ? a.lse + g * a.T * group * 4 : 0
      const single = segs.length === 1 && segs[0].channels === null && segs[0].tier === 'wasm' && !formatInfo(segs[0].format).scaled
      if (a.T === 1 && single && !preRope && sel) {
        // decode over selected slots of one whole-row segment: the causal kernel's tiles over the token
        // list, so selecting every slot is the dense decode below bit for bit (tiles cut every 64 rows)
        validateSelection(sel, n, a.layer, g)
        const idx = tmp(sel.length)
        heap.I32.set(sel, idx >> 2)
        const s = segs[0]
        if ((s.format === 'float32' || s.format === 'float16') && backend.attendGatheredBatch) {
          gathered.push({ q, hq: group, kd: d, vd: d, kTable: s.kTable, vTable: s.vTable, pageTokens: s.pageTokens, idx, nIdx: sel.length, scale: a.scale, out, lse, scratch, half: s.format === 'float16' })
          continue
        }
        const kernel = s.format === 'float16' ? backend.attendGatheredF16 : backend.attendGathered
        kernel(q, group, d, d, s.kTable, s.vTable, s.pageTokens, idx, sel.length, a.scale, out, lse, scratch)
        continue
      }
      if (sel) validateSelection(sel, n, a.layer, g)
      const parts = segmentParts(cache, a.layer, g, segs, sel, a.T, tmp, staged, rebuilt)
      if (preRope) for (const p of parts) rotateKeys(backend, p, d, tmp, a.rotate!)
      if (parts.length === 1 && parts[0].channels === null && !parts[0].packed) {
        const p = parts[0]
        const call = { q, qStride: qs, hq: group, T: a.T, kd: d, vd: d, kTable: p.kTable, vTable: p.vTable, pageTokens: p.pageTokens, n: p.n, visible0: p.visible0, scale: a.scale, out, outStride: qStride, lse, scratch, half: p.format === 'float16' }
        // float32 and float16 heads wait for one batch after the loop: a threaded backend runs every head in one region
        if ((p.format === 'float32' || p.format === 'float16') && backend.attendCausalBatch) dense.push(call)
        else causalKernel(backend, p.format)(q, qs, group, a.T, d, d, p.kTable, p.vTable, p.pageTokens, p.n, p.visible0, a.scale, out, qStride, lse, scratch)
        continue
      }
      // several parts: each into its own buffer with its log-sum-exp, then merged row by row
      const rows = a.T * group
      const outs: number[] = []
      const lses: number[] = []
      for (const p of parts) {
        let qp = q
        let qps = qs
        if (p.channels) {
          qp = tmp(rows * p.kd)
          qps = group * p.kd
          const F = heap.F32
          for (let t = 0; t < a.T; t++) {
            for (let h = 0; h < group; h++) {
              const src = (q >> 2) + t * qs + h * d
              const dst = (qp >> 2) + (t * group + h) * p.kd
              for (let c = 0; c < p.kd; c++) F[dst + c] = F[src + p.channels[c]]
            }
          }
        }
        const o = tmp(rows * d)
        const l = tmp(rows)
        if (p.packed) {
          // packed rows are older than every query: all visible; the queries as [rows][kd] rows
          const basis = p.packed.basis
          if (basis) {
            // int2+sign keys are stored in their basis (basis.ts): the queries go there too, q' . k' = q . k
            const qc = tmp(rows * p.kd)
            for (let t = 0; t < a.T; t++) for (let h = 0; h < group; h++) toBasis(basis, heap.F32, (qp >> 2) + t * qps + h * p.kd, heap.F32, (qc >> 2) + (t * group + h) * p.kd)
            qp = qc
          } else if (qps !== group * p.kd) {
            const qc = tmp(rows * p.kd)
            for (let t = 0; t < a.T; t++) heap.F32.copyWithin((qc >> 2) + t * group * p.kd, (qp >> 2) + t * qps, (qp >> 2) + t * qps + group * p.kd)
            qp = qc
          }
          const { kBits, kHi, vBits, group: g, vGroup } = p.packed
          const scratchP = tmp(packedAttendScratch(rows, p.kd, d, p.n))
          // packed parts run after the loop, in one batch where the backend has one (a threaded backend runs every head in one region)
          packedCalls.push({ q: qp, rows, kd: p.kd, vd: d, kTable: p.kTable, vTable: p.vTable, pageTokens: p.pageTokens, n: p.n, kBits, vBits, scale: a.scale, out: o, lse: l, scratch: scratchP, ...(basis ? { sign: { kHi, group: g, vGroup } } : g !== 32 || vGroup !== 32 ? { group: g, vGroup } : {}) })
        } else causalKernel(backend, p.format)(qp, qps, group, a.T, p.kd, d, p.kTable, p.vTable, p.pageTokens, p.n, p.visible0, a.scale, o, group * d, l, scratch)
        outs.push(o)
        lses.push(l)
      }
      merges.push(() => mergePartials(heap.F32, outs, lses, rows, d, group, qStride, out, lse))
    }
    if (dense.length) backend.attendCausalBatch!(dense)
    if (gathered.length) backend.attendGatheredBatch!(gathered)
    if (backend.attendPackedBatch && packedCalls.length) backend.attendPackedBatch(packedCalls)
    else for (const c of packedCalls) attendPackedCall(packedKernels(backend), c)
    for (const merge of merges) merge()
  } finally {
    for (const p of temps) heap.release(p)
  }
}

const twins = new WeakMap<Heap, PackedKernels>()
/** the backend's fused packed kernels, or the TypeScript twins where it has none (WebGPU) */
export function packedKernels(backend: Backend): PackedKernels {
  if (backend.attendPacked && backend.scorePackedKeys && backend.attendSign && backend.scoreSignKeys) return backend as PackedKernels
  let t = twins.get(backend.heap)
  if (!t) twins.set(backend.heap, (t = referencePackedKernels(backend.heap)))
  return t
}

function checkRebuilt(segs: HeadSegment[], sel: Int32Array | null, preRope: boolean, layer: number, head: number): void {
  const at = `attendCache: rebuiltKeys for (layer ${layer}, head ${head})`
  if (!sel) throw new CacheError(`${at} need a selection for the head`)
  if (preRope) throw new CacheError(`${at} are post-RoPE rows; the cache keeps keys before RoPE`)
  const bad = segs.find((s) => s.tier !== 'wasm' && s.channels !== null)
  if (bad) throw new CacheError(`${at}: a segment outside the arena holds channel-pruned keys; rebuilt keys stand in for whole rows`)
}

function validateSelection(sel: Int32Array, n: number, layer: number, head: number): void {
  if (!(sel instanceof Int32Array) || sel.length === 0) throw new CacheError(`attendCache: selection for (layer ${layer}, head ${head}) must be a non-empty Int32Array`)
  for (let i = 0; i < sel.length; i++) {
    if (!(sel[i] >= 0 && sel[i] < n)) throw new CacheError(`attendCache: selection for (layer ${layer}, head ${head}) has [${i}] = ${sel[i]} outside [0, ${n})`)
    if (i > 0 && sel[i] <= sel[i - 1]) throw new CacheError(`attendCache: selection for (layer ${layer}, head ${head}) must be strictly ascending at [${i}] = ${sel[i]}`)
  }
}

/**
 * One attention part per segment: arena segments attended in place through their page tables; the rows
 * of a selection, and segments in another tier, fetched into contiguous arena buffers first (one-page
 * tables). The new tokens sit at the end of the last segment; earlier segments are wholly visible.
 */
function segmentParts(cache: PagedKVCache, layer: number, head: number, segs: HeadSegment[], sel: Int32Array | null, T: number, tmp: (f: number) => number, staged?: StagedRows, rebuilt = 0): Part[] {
  const heap = cache.heap
  const parts: Part[] = []
  const pre = staged?.get(`${layer}/${head}`)
  // rebuilt keys of the rows outside the arena, consumed in slot order
  let rebuiltAt = rebuilt
  segs.forEach((s, index) => {
    const visible0 = index === segs.length - 1 ? s.n - T + 1 : s.n
    if (pre && isStaged(s)) return
    if (!sel && s.tier === 'wasm') {
      const packed = !formatInfo(s.format).scaled ? undefined : { kBits: kernelBits(s.format), kHi: s.keyBasis?.hi.length ?? 0, vBits: kernelBits(s.valueFormat), basis: s.keyBasis, group: s.group, vGroup: valueGroupFor(s.group, s.vd) }
      parts.push({ kTable: s.kTable, vTable: s.vTable, pageTokens: s.pageTokens, n: s.n, kd: s.d, channels: s.channels, visible0, format: s.format, packed })
      return
    }
    const rows = segmentRows(s, sel)
    if (!rows.length) return
    // rows are fetched in the segment's own format (float16 rows move half the bytes; packed rows are
    // dequantized to float32) and attended as they are
    const outside = rebuilt !== 0 && s.tier !== 'wasm'
    const k = outside ? rebuiltAt : tmp(rows.length * s.d)
    const v = tmp(rows.length * s.vd)
    if (outside) rebuiltAt += rows.length * s.d * (fetchedFormat(s.format) === 'float16' ? 2 : 4)
    cache.fetchRows(layer, head, index, rows, k, v, !outside)
    parts.push(contiguousPart(heap, k, v, rows.length, s.d, s.channels, sel ? rows.length : visible0, tmp, fetchedFormat(s.format)))
  })
  // the staged rows of every host segment of the head: one part (they are wholly visible: appends go to the arena)
  if (pre?.count) parts.push(contiguousPart(heap, pre.k, pre.v, pre.count, cache.options.headDim, null, pre.count, tmp, pre.format))
  return parts
}

/** the format a segment's rows arrive in from fetchRows: packed rows are dequantized to float32 */
function fetchedFormat(format: PageFormat): PageFormat {
  return formatInfo(format).scaled ? 'float32' : format
}

/** a part over rows held contiguously at k and v: a one-page table */
function contiguousPart(heap: Heap, k: number, v: number, count: number, kd: number, channels: Int32Array | null, visible0: number, tmp: (f: number) => number, format: PageFormat): Part {
  const table = tmp(2)
  heap.I32[table >> 2] = k
  heap.I32[(table >> 2) + 1] = v
  return { kTable: table, vTable: table + 4, pageTokens: count, n: count, kd, channels, visible0, format }
}

/** segments attendCacheAsync fetches ahead: outside the arena, whole key rows */
function isStaged(s: HeadSegment): boolean {
  return s.tier !== 'wasm' && s.channels === null
}

/** a segment's rows a selection reads (local, ascending), or all of them */
function segmentRows(s: HeadSegment, sel: Int32Array | null): number[] {
  const rows: number[] = []
  if (sel) {
    for (const i of sel) if (i >= s.start && i < s.start + s.n) rows.push(i - s.start)
  } else for (let i = 0; i < s.n; i++) rows.push(i)
  return rows
}

/** rows fetched ahead from outside the arena, per `layer/head`: every staged segment's rows, in slot order, in arena buffers, in their one format */
export type StagedRows = Map<string, { k: number; v: number; count: number; format: PageFormat; ownsKeys: boolean }>

/**
 * The asynchronous seam: attention over a layer whose cache has segments outside the arena (the host
 * tier; GPU buffers later). Every row those segments contribute (the selection's, or all) is fetched
 * first, all heads' fetches in flight together (`PagedKVCache.fetchRowsAsync`), and only then does the
 * synchronous attention run, reading the staged rows. A caller can start the next fetch while this
 * one's compute runs; a layer held wholly in the arena goes straight to the synchronous path.
 */
export async function attendCacheAsync(backend: Backend, cache: PagedKVCache, a: CacheAttention): Promise<void> {
  const { kvHeads } = cache.options
  const heap = backend.heap
  const staged: StagedRows = new Map()
  const fetches: Promise<void>[] = []
  try {
    const d = cache.options.headDim
    for (let g = 0; g < kvHeads; g++) {
      const sel = a.select?.[g] ?? null
      const segs = cache.segments(a.layer, g)
      if (!segs.some(isStaged)) continue
      if (sel) validateSelection(sel, segs.reduce((s, x) => s + x.n, 0), a.layer, g)
      const rows = segs.map((s) => (isStaged(s) ? segmentRows(s, sel) : []))
      const count = rows.reduce((c, r) => c + r.length, 0)
      const formats = new Set(segs.filter(isStaged).map((s) => fetchedFormat(s.format)))
      if (formats.size > 1) throw new CacheError(`attendCacheAsync: (layer ${a.layer}, head ${g}) has host segments in ${[...formats].join(' and ')}; move them to one format first`)
      const format = [...formats][0]
      const rowBytes = d * (format === 'float16' ? 2 : 4)
      // rebuilt keys stand in for the staged keys: only the values are fetched
      const rebuilt = a.rebuiltKeys?.[g] ?? 0
      if (rebuilt) checkRebuilt(segs, sel, cache.options.keys === 'pre-rope', a.layer, g)
      const k = rebuilt || heap.alloc(Math.max(1, count) * rowBytes, 64)
      const v = heap.alloc(Math.max(1, count) * rowBytes, 64)
      staged.set(`${a.layer}/${g}`, { k, v, count, format, ownsKeys: !rebuilt })
      let at = 0
      rows.forEach((r, index) => {
        if (r.length) fetches.push(cache.fetchRowsAsync(a.layer, g, index, r, k + at * rowBytes, v + at * rowBytes, !rebuilt))
        at += r.length
      })
    }
    await Promise.all(fetches)
    attendCache(backend, cache, a, staged)
  } finally {
    for (const { k, v, ownsKeys } of staged.values()) {
      if (ownsKeys) heap.release(k)
      heap.release(v)
    }
  }
}

/** pre-RoPE keys: a rotated copy at positions 0..n-1 (the slots' order), read through a table of the same paging */
function rotateKeys(backend: Backend, p: Part, d: number, tmp: (f: number) => number, rotate: Rotate): void {
  const heap = backend.heap
  const pages = Math.ceil(p.n / p.pageTokens)
  const k = tmp(p.n * d)
  const table = tmp(pages)
  for (let pg = 0; pg < pages; pg++) {
    const rows = Math.min(p.pageTokens, p.n - pg * p.pageTokens)
    const page = heap.I32[(p.kTable >> 2) + pg]
    const dst = k + pg * p.pageTokens * d * 4
    // float16 keys are widened into the rotated copy (RoPE runs in float32, as the model's own)
    if (p.format === 'float16') backend.fromFloat16(page, dst, rows * d)
    else heap.F32.copyWithin(dst >> 2, page >> 2, (page >> 2) + rows * d)
    heap.I32[(table >> 2) + pg] = dst
  }
  rotate(k, p.n, 1, Array.from({ length: p.n }, (_, i) => i))
  p.kTable = table
  if (p.format === 'float16') {
    // the rotated keys are float32 now: the values are widened too, so the part has one format
    const v = tmp(p.n * d)
    const vTable = tmp(pages)
    for (let pg = 0; pg < pages; pg++) {
      const rows = Math.min(p.pageTokens, p.n - pg * p.pageTokens)
      const dst = v + pg * p.pageTokens * d * 4
      backend.fromFloat16(heap.I32[(p.vTable >> 2) + pg], dst, rows * d)
      heap.I32[(vTable >> 2) + pg] = dst
    }
    p.vTable = vTable
    p.format = 'float32'
  }
}

/**
 * ShadowKV (Sun et al. 2024, "ShadowKV: KV Cache in Shadows for High-Throughput Long-Context LLM
 * Inference", sec. 4; released code `ShadowKVCache`). At prefill end, per layer:
 * - the pre-RoPE keys of the KV heads side by side, [n][kvHeads x headDim], are factored to rank `rank`
 *   (low-rank.ts); only the factors stay in the arena;
 * - the prompt's pages (values, and the exact keys nothing reads any more) move to the host tier;
 * - chunk landmarks (mean post-RoPE key of each `chunk` tokens) are kept; the `outliers` chunks least
 *   similar to their landmark, the first `sink` tokens and the local window keep exact keys in the arena
 *   (shadowkv-chunks.ts).
 * Each decode step and KV head: chunk scores softmax(q . landmark / sqrt(d)) per query head, the max over
 * the head's query group (the released code's GQA rule), the top tokens / chunk chunks; their keys rebuilt
 * from the factors and re-rotated at their positions, handed to attention as `rebuiltKeys`, so only their
 * values are fetched from the host tier. Attended: sink + outliers + selected chunks + local window +
 * every decoded token (the budget counts the selected chunks, as the paper's sparse budget does).
 *
 * Deviations, each said: the released code scales chunk scores by 1/sqrt(128) whatever the head
 * dimension (here 1/sqrt(headDim)) and keeps no sink (here `sink`, 8 by default; 0 is the released
 * behaviour); the outliers' values are read from the host tier with the others (kvkit keeps a row's key
 * and value in one tier), their keys stay exact in the arena. Pre-RoPE keys are recovered from the
 * cache's post-RoPE keys by the inverse rotation (no prompt-long capture), and heads that eviction left
 * holding different slots are factored one by one, each at the layer's share of its columns. A head whose chunks all fit the budget stays dense,
 * in the arena; a prompt that fits it leaves the request a dense one (a budget covering every token
 * gives the full cache's tokens).
 */
import type { F32Buf } from '../backend/heap.js'
import { contiguousView, type OwnedHeadView } from '../backend/views.js'
import { CacheError } from '../cache/errors.js'
import { topKIndices } from './budget.js'
import { PolicyCompositionError, PolicyOptionValueError } from './errors.js'
import { lowRankFactors } from './low-rank.js'
import type { PolicyDefinition } from './registry.js'
import { selectionBudget, selectionBudgetOptions, selectionPolicy, type Selection } from './selection.js'
import { chunkGrid, chunkLandmarks, chunkMinCosine, chunkSlots, type ChunkGrid } from './shadowkv-chunks.js'
import type { PolicyContext } from './types.js'

/** One (layer, KV head) in the shadows: its prompt pages in the host tier, what stays in the arena. */
interface ShadowHead {
  /** prompt slots at prefill end: [0, n0) live in the host tier, later ones in the arena */
  n0: number
  grid: ChunkGrid
  /** chunk ids of the scored (non-outlier) chunks, ascending, and their landmarks [m][d] */
  scored: Int32Array
  landmarks: F32Buf
  view: OwnedHeadView
  /** slots attended with exact keys (sink, outlier chunks, local window), ascending, and those keys [dense][d] */
  dense: Int32Array
  denseKeys: F32Buf
  /** RoPE cos and sin [n0][headDim / 2] of each prompt slot's position (shared by heads holding the same positions) */
  tables: RopeRows
  /** the factor A = U S [n0][rank] (shared by the heads factored together) and this head's B^T [d][rank] */
  a: F32Buf
  bT: F32Buf
  rank: number
  /** the head's rows are fetched as float16 (float16 pages), so the rebuilt keys are rounded to halves */
  half: boolean
}

interface RopeRows {
  positions: Int32Array
  cos: F32Buf
  sin: F32Buf
}

/** ascending union of two disjoint ascending lists, with each entry's origin (true: from `b`) */
function merge(a: Int32Array, b: Int32Array): { slots: Int32Array; fromB: Uint8Array } {
  const slots = new Int32Array(a.length + b.length)
  const fromB = new Uint8Array(slots.length)
  for (let i = 0, j = 0, k = 0; k < slots.length; k++) {
    if (j >= b.length || (i < a.length && a[i] < b[j])) slots[k] = a[i++]
    else {
      slots[k] = b[j++]
      fromB[k] = 1
    }
  }
  return { slots, fromB }
}

/** the `count` chunks with the least minimum cosine (ties to the lower index), ascending */
function outlierChunks(minCos: Float32Array, count: number): Int32Array {
  const order = Array.from(minCos.keys()).sort((x, y) => minCos[x] - minCos[y] || x - y)
  return Int32Array.from(order.slice(0, count)).sort()
}

export const shadowkv: PolicyDefinition = {
  name: 'shadowkv',
  description: 'ShadowKV: low-rank pre-RoPE keys, values in the host tier, chunk landmarks + outlier chunks; keys of the selected chunks rebuilt per step',
  stage: 'selection',
  options: [
    ...selectionBudgetOptions.map((b) => ({ ...b, description: `selected chunk tokens per head and step, ${b.name === 'budget' ? 'as a ratio of the prompt (0 < budget <= 1)' : 'as a count (instead of budget)'}; the sink, outliers and local window come on top (the paper's sparse budget)` })),
    { name: 'rank', type: 'integer', default: null, min: 1, description: 'rank of a layer\'s pre-RoPE key factors, at most kvHeads x headDim (default: 3/8 of those columns, 48 of the fixture\'s 128; the paper: 160 of 1024)' },
    { name: 'chunk', type: 'integer', default: 8, min: 1, description: 'tokens per chunk (the paper: 8)' },
    { name: 'outliers', type: 'integer', default: 48, min: 0, description: 'chunks kept whole with exact keys (the paper: 48)' },
    { name: 'sink', type: 'integer', default: 8, min: 0, description: 'first tokens always attended (the released code: 0)' },
    { name: 'local', type: 'integer', default: 32, min: 0, description: 'last prompt tokens always attended (the released code: 4 chunks of 8)' },
  ],
  create(o, model) {
    const cols = model.kvHeads * model.headDim
    const rank = (o.rank as number | undefined) ?? Math.max(1, Math.round((3 / 8) * cols))
    const chunk = o.chunk as number
    const outliers = o.outliers as number
    const sink = o.sink as number
    const local = o.local as number
    if (rank > cols) throw new PolicyOptionValueError(`shadowkv: rank=${rank} is more than the ${cols} columns of a layer's keys (kvHeads ${model.kvHeads} x headDim ${model.headDim})`)
    return selectionPolicy({
      name: 'shadowkv',
      // the prompt's pages go to the host tier at prefill end (prepareLayer)
      traits: { offloads: true },
      selector() {
        // per layer, per KV head: null for a head that stays dense
        let heads: (ShadowHead | null)[][] = []
        let tables: RopeRows[] = []
        const owned: { free(): void }[] = []
        let step: { ptr: number; free(): void }[] = []
        let energy = 0
        let factored = 0
        let rebuiltRows = 0
        let fetchedValueRows = 0
        let shadowBytes = 0
        /** chunks selected per head and step: the budget in whole chunks, at least one */
        const chunksPerStep = (ctx: PolicyContext) => Math.max(1, Math.floor(selectionBudget(o, ctx.promptLength) / chunk))
        const freeStep = () => {
          for (const b of step) b.free()
          step = []
        }
        return {
          onPrefillEnd(ctx) {
            const { cache } = ctx
            if (cache.options.keys !== 'post-rope') throw new CacheError('shadowkv: the cache keeps keys before RoPE; ShadowKV factors them itself and needs post-RoPE storage')
            if (!ctx.runtime?.ropeTables) throw new CacheError('shadowkv: the policy context has no runtime (RoPE is needed to rebuild keys)')
            const kSel = chunksPerStep(ctx)
            heads = Array.from({ length: model.layers }, (_, l) => prepareLayer(ctx, l, kSel))
          },
          onApplied() {
            if (heads.some((row) => row.some((h) => h)))
              throw new PolicyCompositionError('shadowkv: a decision moved cache slots after ShadowKV factored the prompt; compose it only with prefill-time eviction (every=0)')
          },
          select(ctx, layer, query): Selection | null {
            freeStep()
            const row = heads[layer]
            if (!row?.some((h) => h)) return null
            const out: Selection = []
            const rebuiltKeys: number[] = []
            const kSel = chunksPerStep(ctx)
            for (let g = 0; g < model.kvHeads; g++) {
              const h = row[g]
              if (!h) {
                out.push(null)
                rebuiltKeys.push(0)
                continue
              }
              const n = ctx.cache.length(layer, g)
              const chosen = chunkSlots(h.grid, chooseChunks(ctx, h, g, query, kSel))
              const prompt = merge(h.dense, chosen)
              const sel = new Int32Array(prompt.slots.length + n - h.n0)
              sel.set(prompt.slots)
              for (let i = h.n0; i < n; i++) sel[prompt.slots.length + i - h.n0] = i
              const keys = rebuildKeys(ctx, h, chosen, prompt)
              step.push(keys)
              rebuiltRows += chosen.length
              fetchedValueRows += prompt.slots.length
              out.push(sel)
              rebuiltKeys.push(keys.ptr)
            }
            return Object.assign(out, { rebuiltKeys })
          },
          report: () => ({ rank, keyEnergy: factored ? energy / factored : 0, keysRebuilt: rebuiltRows, valueRowsFetched: fetchedValueRows, shadowBytes }),
          dispose() {
            freeStep()
            for (const b of owned) b.free()
            owned.length = 0
            shadowBytes = 0
            heads = []
            tables = []
          },
        }

        /** factors, landmarks and exact keys of one layer's heads; moves their prompt pages to the host tier */
        function prepareLayer(ctx: PolicyContext, layer: number, kSel: number): (ShadowHead | null)[] {
          const { cache, ops } = ctx
          const d = model.headDim
          const heap = ops.heap
          const lengths = Array.from({ length: model.kvHeads }, (_, g) => cache.length(layer, g))
          const positions = lengths.map((_, g) => cache.positions(layer, g))
          const grids = lengths.map((n) => chunkGrid(n, sink, chunk, local))
          // a head whose chunks all fit the budget (after the outliers) stays dense, in the arena
          const active = grids.map((gr) => gr.chunks - Math.min(outliers, gr.chunks) > kSel)
          const post = lengths.map((_, g) => (active[g] ? cache.readKeys(layer, g) : null))
          const pre = post.map((k, g) => (k ? rotated(ctx, k, positions[g].map((p) => -p)) : null))
          const ids = active.flatMap((on, g) => (on ? [g] : []))
          // rebuilt keys come in the one format the head's rows are fetched in (packed rows: float32)
          const half = ids.map((g) => {
            const formats = new Set(cache.segments(layer, g).map((s) => (s.format === 'float16' ? 'float16' : 'float32')))
            if (formats.size > 1) throw new CacheError(`shadowkv: (layer ${layer}, head ${g}) holds float16 and packed rows; rebuilt keys need one row format`)
            return formats.has('float16')
          })
          const aligned = ids.every((g) => lengths[g] === lengths[ids[0]] && positions[g].every((p, i) => p === positions[ids[0]][i]))
          const groups = aligned ? [ids] : ids.map((g) => [g])
          const out: (ShadowHead | null)[] = new Array(model.kvHeads).fill(null)
          for (const group of groups) {
            if (!group.length) continue
            const n = lengths[group[0]]
            const width = group.length * d
            const x = new Float32Array(n * width)
            group.forEach((g, gi) => {
              for (let t = 0; t < n; t++) x.set(pre[g]!.subarray(t * d, (t + 1) * d), t * width + gi * d)
            })
            // heads factored alone keep the layer's share of their columns
            const r = Math.min(n, Math.max(1, Math.round((rank * width) / cols)))
            const f = lowRankFactors(ops.backend, x, n, width, r)
            energy += f.energy
            factored++
            const a = keep(heap.f32From(f.a))
            group.forEach((g, gi) => {
              const bT = keep(heap.allocF32(d * r))
              const B = bT.view
              for (let j = 0; j < d; j++) for (let k = 0; k < r; k++) B[j * r + k] = f.b[k * width + gi * d + j]
              out[g] = shadowHead(ctx, post[g]!, ropeRows(ctx, positions[g]), grids[g], a, bT, r, half[ids.indexOf(g)])
            })
          }
          for (const g of ids) cache.moveTo('host', { layer, head: g })
          return out
        }

        /** the RoPE tables of a head's positions: the last ones made when they hold the same positions */
        function ropeRows(ctx: PolicyContext, positions: Int32Array): RopeRows {
          const last = tables[tables.length - 1]
          if (last && last.positions.length === positions.length && last.positions.every((p, i) => p === positions[i])) return last
          const half = model.headDim / 2
          const t = { positions, cos: keep(ctx.ops.heap.allocF32(Math.max(1, positions.length * half))), sin: keep(ctx.ops.heap.allocF32(Math.max(1, positions.length * half))) }
          ctx.runtime!.ropeTables(positions, t.cos.ptr, t.sin.ptr)
          tables.push(t)
          return t
        }

        function shadowHead(ctx: PolicyContext, keys: Float32Array, tables: RopeRows, grid: ChunkGrid, a: F32Buf, bT: F32Buf, r: number, half: boolean): ShadowHead {
          const d = model.headDim
          const heap = ctx.ops.heap
          const all = chunkLandmarks(keys, d, grid)
          const out = outlierChunks(chunkMinCosine(keys, d, grid, all), Math.min(outliers, grid.chunks))
          const isOutlier = new Uint8Array(grid.chunks)
          for (const c of out) isOutlier[c] = 1
          const scored = Int32Array.from({ length: grid.chunks }, (_, c) => c).filter((c) => !isOutlier[c])
          const landmarks = keep(heap.allocF32(Math.max(1, scored.length) * d))
          scored.forEach((c, i) => landmarks.view.set(all.subarray(c * d, (c + 1) * d), i * d))
          const view = contiguousView(landmarks, scored.length, d)
          owned.push(view)
          const n0 = keys.length / d
          const dense = Int32Array.from([
            ...Array.from({ length: grid.sink }, (_, i) => i),
            ...chunkSlots(grid, out),
            ...Array.from({ length: n0 - grid.localStart }, (_, i) => grid.localStart + i),
          ])
          const denseKeys = keep(heap.allocF32(Math.max(1, dense.length) * d))
          dense.forEach((s, i) => denseKeys.view.set(keys.subarray(s * d, (s + 1) * d), i * d))
          return { n0, grid, scored, landmarks, view, dense, denseKeys, tables, a, bT, rank: r, half }
        }

        function keep(b: F32Buf): F32Buf {
          owned.push(b)
          shadowBytes += b.length * 4
          return b
        }
      },
    })

    /** rotates rows [m][d] of y in place, row i by the RoPE table row of slot slots[i] */
    function rotateRows(ctx: PolicyContext, y: F32Buf, m: number, t: RopeRows, slots: Int32Array): void {
      const half = model.headDim / 2
      const heap = ctx.ops.heap
      const cos = heap.allocF32(m * half)
      const sin = heap.allocF32(m * half)
      try {
        const F = heap.F32
        for (let i = 0; i < m; i++) {
          F.copyWithin((cos.ptr >> 2) + i * half, (t.cos.ptr >> 2) + slots[i] * half, (t.cos.ptr >> 2) + (slots[i] + 1) * half)
          F.copyWithin((sin.ptr >> 2) + i * half, (t.sin.ptr >> 2) + slots[i] * half, (t.sin.ptr >> 2) + (slots[i] + 1) * half)
        }
        ctx.ops.backend.rope(y.ptr, m, 1, model.headDim, cos.ptr, sin.ptr)
      } finally {
        sin.free()
        cos.free()
      }
    }

    /** rows [n][d] rotated to the given positions (a copy; negative positions undo RoPE) */
    function rotated(ctx: PolicyContext, rows: Float32Array, positions: Int32Array): Float32Array {
      const heap = ctx.ops.heap
      const half = model.headDim / 2
      const n = positions.length
      const buf = heap.f32From(rows)
      const cos = heap.allocF32(Math.max(1, n * half))
      const sin = heap.allocF32(Math.max(1, n * half))
      try {
        ctx.runtime!.ropeTables(positions, cos.ptr, sin.ptr)
        ctx.ops.backend.rope(buf.ptr, n, 1, model.headDim, cos.ptr, sin.ptr)
        return buf.view.slice()
      } finally {
        sin.free()
        cos.free()
        buf.free()
      }
    }

    /** the top kSel scored chunks of one KV head for this step's query, ascending chunk ids */
    function chooseChunks(ctx: PolicyContext, h: ShadowHead, g: number, query: Float32Array, kSel: number): Int32Array {
      const { group, headDim: d } = model
      const m = h.scored.length
      const heap = ctx.ops.heap
      const q = heap.f32From(query.subarray(g * group * d, (g + 1) * group * d))
      const scores = heap.allocF32(group * m)
      try {
        ctx.ops.scoreKeys(q, group, h.view, 1 / Math.sqrt(d), scores)
        ctx.ops.softmaxRows(scores, group, m)
        const S = scores.view
        const best = new Float32Array(m).fill(-Infinity)
        for (let r = 0; r < group; r++) for (let c = 0; c < m; c++) best[c] = Math.max(best[c], S[r * m + c])
        return Int32Array.from(topKIndices(ctx.ops, best, kSel), (i) => h.scored[i]).sort()
      } finally {
        scores.free()
        q.free()
      }
    }

    /**
     * Keys [prompt slots][d] for the selection's host-tier slots in slot order: exact ones for the dense
     * slots, A[slot] . B_head re-rotated at the slot's position for the chosen chunks (compute core's
     * matmul and the model's RoPE).
     */
    function rebuildKeys(ctx: PolicyContext, h: ShadowHead, chosen: Int32Array, prompt: { slots: Int32Array; fromB: Uint8Array }): { ptr: number; free(): void } {
      const d = model.headDim
      const r = h.rank
      const heap = ctx.ops.heap
      const m = chosen.length
      const x = heap.allocF32(Math.max(1, m * r))
      const y = heap.allocF32(Math.max(1, m * d))
      const out = heap.allocF32(Math.max(1, prompt.slots.length * d))
      try {
        const A = h.a.view
        const X = x.view
        for (let i = 0; i < m; i++) X.set(A.subarray(chosen[i] * r, (chosen[i] + 1) * r), i * r)
        if (m) {
          ctx.ops.backend.matmul(x.ptr, h.bT.ptr, 0, y.ptr, m, r, d)
          rotateRows(ctx, y, m, h.tables, chosen)
        }
        const F = heap.F32
        for (let k = 0, i = 0, j = 0; k < prompt.slots.length; k++) {
          const src = prompt.fromB[k] ? (y.ptr >> 2) + i++ * d : (h.denseKeys.ptr >> 2) + j++ * d
          F.copyWithin((out.ptr >> 2) + k * d, src, src + d)
        }
        if (!h.half) return out
        // float16 pages are attended as halves: the keys are rounded as the cache rounds its own
        const half = heap.alloc(Math.max(1, prompt.slots.length * d) * 2, 64)
        ctx.ops.backend.toFloat16(out.ptr, half, prompt.slots.length * d)
        out.free()
        return { ptr: half, free: () => heap.release(half) }
      } catch (e) {
        out.free()
        throw e
      } finally {
        y.free()
        x.free()
      }
    }
  },
}

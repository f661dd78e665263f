/**
 * A selection policy's key scores over a head of several segments: a KIVI / MiKV head (packed rows, then
 * the float window) scored segment by segment in place, instead of every packed key dequantized into a
 * float32 copy each decode step (keyView's copy: what ran before, so scorePackedKeysInt never ran in
 * model.generate).
 */
import type { F32Buf } from '../backend/heap.js'
import type { HeadSegment } from '../cache/types.js'
import { keyView, subBuf } from './selection.js'
import type { PolicyContext } from './types.js'

/** key formats Ops.scoreKeys scores in place: int4/2/1 with the integer kernel, int8 with the fused float one */
const PACKED_IN_PLACE = new Set(['int8', 'int4', 'int2', 'int1'])

function inPlace(s: HeadSegment, float16: boolean): boolean {
  if (s.tier !== 'wasm' || s.channels !== null || s.keyBasis !== null) return false
  return s.format === 'float32' || (float16 && s.format === 'float16') || (PACKED_IN_PLACE.has(s.format) && s.pageTokens % 32 === 0)
}

/**
 * scale * q_r . k_j for the `rows` query rows q ([rows][headDim]) over every key slot j < n of (layer,
 * head), written as [rows][n] at out. A head whose segments all lie in the arena at full width is scored
 * one segment at a time through Ops.scoreKeys: float32 (and float16 with `opts.float16`) pages in place,
 * packed int4/2/1 keys with integer dot products (scorePackedKeysInt: within the bound its docstring
 * states, for ranking keys as selection does; README "Integer key scoring"), int8 with the fused float
 * kernel. Any other head (one float segment, the host tier, channel-pruned or ternary / sign keys) is
 * scored over keyView, as before.
 */
export function scoreHeadKeys(ctx: PolicyContext, layer: number, head: number, q: F32Buf, rows: number, scale: number, out: F32Buf, opts: { float16?: boolean } = {}): void {
  const segs = ctx.cache.segments(layer, head)
  const float16 = opts.float16 === true
  const split = segs.some((s) => PACKED_IN_PLACE.has(s.format)) && segs.every((s) => inPlace(s, float16))
  if (!split) {
    const kv = keyView(ctx, layer, head, opts)
    try {
      ctx.ops.scoreKeys(q, rows, kv.view, scale, out)
    } finally {
      kv.done()
    }
    return
  }
  const n = ctx.cache.length(layer, head)
  const tmp = ctx.ops.heap.allocF32(rows * Math.max(1, ...segs.map((s) => s.n)))
  try {
    for (const s of segs) {
      if (s.n === 0) continue
      ctx.ops.scoreKeys(q, rows, s, scale, subBuf(tmp, 0, rows * s.n))
      // the kernel writes [rows][s.n]; the head's rows are n slots long, this segment's from s.start
      const t = tmp.view
      const o = out.view
      for (let r = 0; r < rows; r++) o.set(t.subarray(r * s.n, (r + 1) * s.n), r * n + s.start)
    }
  } finally {
    tmp.free()
  }
}

/**
 * How a parallel region's work is cut: contiguous ranges of units (row blocks of a matrix product,
 * query heads or tokens of an attention call) of near-equal cost, so no thread waits on a longer share.
 */

/** [from, to) ranges cutting `count` into at most `parts` pieces, each a multiple of `unit` (the last takes the rest) */
export function splitRange(count: number, parts: number, unit: number): [number, number][] {
  const units = Math.ceil(count / unit)
  const p = Math.max(1, Math.min(parts, units))
  const out: [number, number][] = []
  for (let i = 0, from = 0; i < p; i++) {
    const to = i === p - 1 ? count : Math.min(count, Math.round(((i + 1) * units) / p) * unit)
    if (to > from) out.push([from, to])
    from = to
  }
  return out
}

/**
 * [from, to) ranges of units 0 .. costs.length cutting them into at most `parts` non-empty contiguous
 * pieces whose summed costs are near total / parts: each cut falls on the unit boundary nearest its
 * ideal prefix sum. Costs are non-negative; a causal attention's tokens cost more the later they sit
 * (each sees more keys), so its pieces hold fewer late tokens than early ones.
 */
export function splitByCost(costs: ArrayLike<number>, parts: number): [number, number][] {
  const n = costs.length
  if (n === 0) return []
  const prefix = new Float64Array(n + 1)
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i] + costs[i]
  const total = prefix[n]
  const p = Math.max(1, Math.min(parts, n))
  const out: [number, number][] = []
  let from = 0
  for (let i = 1; i <= p && from < n; i++) {
    let to = n
    if (i < p) {
      const target = (total * i) / p
      // first boundary at or past the target, or the one before it when that is nearer
      to = from + 1
      while (to < n && prefix[to] < target) to++
      if (to - 1 > from && target - prefix[to - 1] < prefix[to] - target) to--
      // leave at least one unit for each remaining piece
      to = Math.min(to, n - (p - i))
      if (to <= from) to = from + 1
    }
    out.push([from, to])
    from = to
  }
  if (from < n) out[out.length - 1][1] = n
  return out
}

/**
 * Cuts a sequence of segments (segment s: lengths[s] items of weights[s] cost each; a batch's matmuls
 * by output rows, a decode step's query row blocks by keys) into `parts` pieces of near-equal cost,
 * without a per-item list: cut i falls in the segment holding the prefix cost total * i / parts, at the
 * multiple of align[s] items nearest it (at most the segment's end). Returns parts + 1 cuts
 * [segment, item], the first [0, 0] and the last [last segment, its length]; the piece between two
 * equal cuts is empty, and a piece between cuts in different segments spans them.
 */
export function cutByCost(lengths: readonly number[], weights: readonly number[], parts: number, align: readonly number[]): [number, number][] {
  let total = 0
  for (let s = 0; s < lengths.length; s++) total += lengths[s] * weights[s]
  const cuts: [number, number][] = [[0, 0]]
  let seg = 0
  let before = 0 // cost of the segments before `seg`
  for (let i = 1; i < parts; i++) {
    const target = (total * i) / parts
    while (seg < lengths.length - 1 && before + lengths[seg] * weights[seg] <= target) {
      before += lengths[seg] * weights[seg]
      seg++
    }
    const item = Math.min(lengths[seg], Math.round((target - before) / weights[seg] / align[seg]) * align[seg])
    cuts.push([seg, item])
  }
  cuts.push([lengths.length - 1, lengths[lengths.length - 1]])
  return cuts
}

/** the pieces between consecutive cuts of cutByCost: per piece, its [segment, from, to) spans (none empty) */
export function piecesOf(cuts: readonly [number, number][], lengths: readonly number[]): [number, number, number][][] {
  const pieces: [number, number, number][][] = []
  for (let i = 0; i + 1 < cuts.length; i++) {
    const [s0, i0] = cuts[i]
    const [s1, i1] = cuts[i + 1]
    const spans: [number, number, number][] = []
    for (let s = s0; s <= s1; s++) {
      const from = s === s0 ? i0 : 0
      const to = s === s1 ? i1 : lengths[s]
      if (to > from) spans.push([s, from, to])
    }
    pieces.push(spans)
  }
  return pieces
}

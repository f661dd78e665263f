// Row moves inside the KV store's pages, so applying a decision never copies rows through JavaScript.
// A paged stream is a table of int32 byte pointers, page p holding rows p*pageTokens .. of rowBytes each.

// @ts-ignore: decorator
@inline function rowAddr(table: usize, pageTokens: i32, rowBytes: i32, i: i32): usize {
  const p = i / pageTokens
  return <usize>load<u32>(table + (<usize>p << 2)) + <usize>(i - p * pageTokens) * <usize>rowBytes
}

/**
 * Order-preserving compaction in place: row keep[j] moves to row j wherever keep[j] != j. keep is
 * strictly ascending, so a row only moves towards the front and never onto a row still to be read; rows
 * before the first gap stay where they are. A run of rows contiguous at both ends and inside one page at
 * both ends goes as one memory.copy. Returns the number of rows moved.
 */
export function compactRows(table: usize, pageTokens: i32, rowBytes: i32, keep: usize, nKeep: i32): i32 {
  let moved = 0
  let j = 0
  while (j < nKeep) {
    const s = load<i32>(keep + (<usize>j << 2))
    if (s == j) {
      j++
      continue
    }
    let len = 1
    while (j + len < nKeep && load<i32>(keep + (<usize>(j + len) << 2)) == s + len && (j + len) % pageTokens != 0 && (s + len) % pageTokens != 0) len++
    memory.copy(rowAddr(table, pageTokens, rowBytes, j), rowAddr(table, pageTokens, rowBytes, s), <usize>len * <usize>rowBytes)
    moved += len
    j += len
  }
  return moved
}

/**
 * dst row i = the listed channels of src row i, for rows [0, rows): src rows have d elements, dst rows
 * nch (ThinK's channel-pruned keys); elements of K (f32, or u16 for float16 pages). The two streams may
 * have different tables, never the same pages.
 */
function gatherChannelsOf<K>(src: usize, dst: usize, pageTokens: i32, d: i32, channels: usize, nch: i32, rows: i32): void {
  for (let i = 0; i < rows; i++) {
    const s = rowAddr(src, pageTokens, d << alignof<K>(), i)
    const t = rowAddr(dst, pageTokens, nch << alignof<K>(), i)
    for (let c = 0; c < nch; c++) store<K>(t + (<usize>c << alignof<K>()), load<K>(s + (<usize>load<i32>(channels + (<usize>c << 2)) << alignof<K>())))
  }
}

export function gatherChannels(src: usize, dst: usize, pageTokens: i32, d: i32, channels: usize, nch: i32, rows: i32): void {
  gatherChannelsOf<f32>(src, dst, pageTokens, d, channels, nch, rows)
}

/** gatherChannels over float16 rows */
export function gatherChannelsF16(src: usize, dst: usize, pageTokens: i32, d: i32, channels: usize, nch: i32, rows: i32): void {
  gatherChannelsOf<u16>(src, dst, pageTokens, d, channels, nch, rows)
}

/**
 * Row moves by list: for each of count pairs (dst, src) of int32 row indices, row src is copied onto row
 * dst. The pairs must not chain (no dst is a later src): the store's hole filling moves rows from past
 * the new end into holes before it, so they never do. Costs count row copies, whatever the stream's length.
 */
export function moveRows(table: usize, pageTokens: i32, rowBytes: i32, pairs: usize, count: i32): void {
  for (let i = 0; i < count; i++) {
    const p = pairs + (<usize>i << 3)
    memory.copy(rowAddr(table, pageTokens, rowBytes, load<i32>(p)), rowAddr(table, pageTokens, rowBytes, load<i32>(p, 4)), <usize>rowBytes)
  }
}

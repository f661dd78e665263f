// Row moves inside the KV store's pages, so applying a decision never copies rows through JavaScript.
// A paged stream is a table of int32 byte pointers, page p holding rows p*pageTokens .. of rowBytes each.

// @ts-ignore: decorator
@inline function rowAddr(table: usize, pageTokens: i32, rowBytes: i32, i: i32): usize {
  const p = i / pageTokens
  return <usize>load<u32>(table + (<usize>p << 2)) + <usize>(i - p * pageTokens) * <usize>rowBytes
}

// A run this short is copied by v128 loads and stores in the kernel: a memory.copy call costs more than
// moving a few hundred bytes (an isolated 256-byte row, the common case of a scattered keep list).
const INLINE_COPY_BYTES: usize = 1024

/**
 * Copies `bytes` from src to dst, dst <= src (compaction moves rows towards the front): forward, 16 bytes
 * loaded before they are stored, so an overlapping move never reads a byte it already wrote.
 */
// @ts-ignore: decorator
@inline function copyForward(dst: usize, src: usize, bytes: usize): void {
  if (bytes > INLINE_COPY_BYTES || (bytes & 15) != 0) {
    memory.copy(dst, src, bytes)
    return
  }
  let o: usize = 0
  for (; o + 64 <= bytes; o += 64) {
    const a = v128.load(src + o)
    const b = v128.load(src + o, 16)
    const c = v128.load(src + o, 32)
    const d = v128.load(src + o, 48)
    v128.store(dst + o, a)
    v128.store(dst + o, b, 16)
    v128.store(dst + o, c, 32)
    v128.store(dst + o, d, 48)
  }
  for (; o < bytes; o += 16) v128.store(dst + o, v128.load(src + o))
}

/**
 * The compaction loop of compactRows and compactRowsKV: runs of kept rows (contiguous in keep, inside one
 * page at both ends) found once, each copied in the key stream and, when `both`, in the value stream
 * (the same page arithmetic: both tables share pageTokens). `both` is a constant at each call site, so
 * the one-stream kernel carries no value-side branch.
 */
// @ts-ignore: decorator
@inline function compactRuns(kTable: usize, vTable: usize, pageTokens: i32, kRowBytes: i32, vRowBytes: i32, keep: usize, nKeep: i32, both: bool): i32 {
  let j = 0
  while (j < nKeep && load<i32>(keep + (<usize>j << 2)) == j) j++
  const moved = nKeep - j
  const pow2 = (pageTokens & (pageTokens - 1)) == 0
  const shift = <i32>ctz(pageTokens)
  const kb = <usize>kRowBytes
  const vb = <usize>vRowBytes
  while (j < nKeep) {
    const s = load<i32>(keep + (<usize>j << 2))
    const dp = pow2 ? j >> shift : j / pageTokens
    const sp = pow2 ? s >> shift : s / pageTokens
    const dr = j - dp * pageTokens
    const sr = s - sp * pageTokens
    // the run ends at the end of keep, at a gap in the sources, or where either side leaves its page
    const room = min(pageTokens - dr, pageTokens - sr)
    let len = 1
    while (len < room && j + len < nKeep && load<i32>(keep + (<usize>(j + len) << 2)) == s + len) len++
    copyForward(<usize>load<u32>(kTable + (<usize>dp << 2)) + <usize>dr * kb, <usize>load<u32>(kTable + (<usize>sp << 2)) + <usize>sr * kb, <usize>len * kb)
    if (both) copyForward(<usize>load<u32>(vTable + (<usize>dp << 2)) + <usize>dr * vb, <usize>load<u32>(vTable + (<usize>sp << 2)) + <usize>sr * vb, <usize>len * vb)
    j += len
  }
  return moved
}

/**
 * Order-preserving compaction in place: row keep[j] moves to row j wherever keep[j] != j. keep is
 * strictly ascending, so a row only moves towards the front and never onto a row still to be read; rows
 * before the first gap stay where they are. A run of kept rows contiguous at both ends and inside one
 * page at both ends is one copy: memory.copy, or SIMD loads and stores when it is a few rows (see
 * copyForward). Page arithmetic is done once a run, by shifts when pageTokens is a power of two.
 * Returns the number of rows moved.
 */
export function compactRows(table: usize, pageTokens: i32, rowBytes: i32, keep: usize, nKeep: i32): i32 {
  return compactRuns(table, 0, pageTokens, rowBytes, 0, keep, nKeep, false)
}

/**
 * compactRows of a head's keys and values in one pass over keep (ABI 1.6): each run is found once and
 * copied in both streams, so keep is read once and the run arithmetic done once for the two (10-12%
 * faster than two compactRows calls on a random quarter kept; BENCHMARKS.md, issue 10). The key and
 * value rows may differ in bytes (channel-pruned keys, any element size); both tables hold pages of
 * pageTokens rows and never share a page. Returns the number of rows moved in each stream.
 */
export function compactRowsKV(kTable: usize, vTable: usize, pageTokens: i32, kRowBytes: i32, vRowBytes: i32, keep: usize, nKeep: i32): i32 {
  return compactRuns(kTable, vTable, pageTokens, kRowBytes, vRowBytes, keep, nKeep, true)
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

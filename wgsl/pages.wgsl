// Page summaries of a paged key stream; one thread per (page or chunk, channel).
// args: 0 table, 1 pageTokens, 2 n, 3 d, 4 page, 5 outA, 6 outB, 7 mode
//   mode 0: per-channel min (outA) and max (outB) of each page of `page` tokens
//   mode 1: per-channel mean (outA) of each chunk of `page` tokens (the last averages what it has)
@compute @workgroup_size(256)
fn page_summary(I: In) {
  setup(I);
  let table = pu(0u); let pt = pu(1u); let n = pu(2u); let d = pu(3u); let page = pu(4u);
  let g = wg_linear(I.wg, I.nwg) * WG + I.lid;
  let chunks = (n + page - 1u) / page;
  if (g >= chunks * d) { return; }
  let b = g / d;
  let c = g % d;
  let end = min(n, (b + 1u) * page);
  var lo = ld(page_row(table, pt, b * page, d) + c);
  var hi = lo;
  var s = 0.0;
  for (var j = b * page; j < end; j++) {
    let v = ld(page_row(table, pt, j, d) + c);
    lo = min(lo, v);
    hi = max(hi, v);
    s += v;
  }
  if (pu(7u) == 0u) {
    st(pu(5u) + g, lo);
    st(pu(6u) + g, hi);
  } else {
    st(pu(5u) + g, s / f32(end - b * page));
  }
}

// The store's row moves (the compute core's assembly/kernels/rows.ts), one thread a 32-bit word of a row.
// Rows are w words (float32 rows, or float16 rows of an even head dim) of a paged stream.
// word k of row i of a paged stream (page_row counts rows of w words)
fn row_word(table: u32, pt: u32, w: u32, i: u32, k: u32) -> u32 { return page_row(table, pt, i, w) + k; }

// args: 0 table, 1 pageTokens, 2 w, 3 pairs (count x (dst row, src row), int32), 4 count
// moveRows: row src onto row dst for each pair; the pairs must not chain (the store's hole filling
// moves rows from past the new end into holes before it, so every source differs from every target)
// and so run in any order.
@compute @workgroup_size(256)
fn move_rows(I: In) {
  let table = pu(0u); let pt = pu(1u); let w = pu(2u); let pairs = pu(3u);
  let x = wg_linear(I.wg, I.nwg) * WG + I.lid;
  let p = x / w;
  if (p >= pu(4u)) { return; }
  let k = x % w;
  stu(row_word(table, pt, w, ldu(pairs + 2u * p), k), ldu(row_word(table, pt, w, ldu(pairs + 2u * p + 1u), k)));
}

// args: 0 table, 1 pageTokens, 2 w, 3 keep (nKeep ascending int32 rows), 4 nKeep, 5 scratch (nKeep x w
// words), 6 direction (0: kept rows out to scratch, 1: scratch back to rows 0 .. nKeep-1)
// compactRows (row keep[j] to row j, order kept) as two dispatches through scratch: threads run in no
// order, and in place row j could be written by thread j while the thread j' with keep[j'] = j still
// reads it, so the kept rows go out first, then come back to the front.
@compute @workgroup_size(256)
fn compact_rows(I: In) {
  let table = pu(0u); let pt = pu(1u); let w = pu(2u); let keep = pu(3u); let scratch = pu(5u);
  let x = wg_linear(I.wg, I.nwg) * WG + I.lid;
  let j = x / w;
  if (j >= pu(4u)) { return; }
  let k = x % w;
  if (pu(6u) == 0u) {
    stu(scratch + j * w + k, ldu(row_word(table, pt, w, ldu(keep + j), k)));
  } else {
    stu(row_word(table, pt, w, j, k), ldu(scratch + j * w + k));
  }
}

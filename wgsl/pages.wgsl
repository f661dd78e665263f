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

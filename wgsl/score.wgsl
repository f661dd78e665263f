// GQA key scoring over a page table: out[h*n + i] = scale * (q[h] . k_i) for h < qHeads, i < n.
// One thread per key; heads in groups of 8 accumulators so a key row is read once per group.
// args: 0 q, 1 qHeads, 2 d, 3 table, 4 pageTokens, 5 n, 6 scale (f32), 7 out   (word indices)
@compute @workgroup_size(64)
fn score_keys(I: In) {
  setup(I);
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let table = pu(3u);
  let pt = pu(4u); let n = pu(5u); let scale = pf(6u); let out = pu(7u);
  let i = wg_linear(I.wg, I.nwg) * 64u + I.lid;
  if (i >= n) { return; }
  let row = page_row(table, pt, i, d);
  for (var h0 = 0u; h0 < qh; h0 += 8u) {
    let hn = min(8u, qh - h0);
    var acc: array<f32, 8>; // zeroed explicitly: lavapipe kept the previous group's sums
    for (var h = 0u; h < 8u; h++) { acc[h] = 0.0; }
    for (var c = 0u; c < d; c++) {
      let k = ld(row + c);
      for (var h = 0u; h < hn; h++) { acc[h] += ld(q + (h0 + h) * d + c) * k; }
    }
    for (var h = 0u; h < hn; h++) { st(out + (h0 + h) * n + i, scale * acc[h]); }
  }
}

// Softmax family, one 256-thread workgroup per row.

// args: 0 x, 1 rows, 2 n. Row r in place; a row of all -inf becomes zeros.
@compute @workgroup_size(256)
fn softmax_rows(I: In) {
  setup(I);
  let n = pu(2u);
  let x = pu(0u) + wg_linear(I.wg, I.nwg) * n;
  var m = neg_inf();
  for (var i = I.lid; i < n; i += WG) { m = max(m, ld(x + i)); }
  m = wg_max(m, I.lid);
  if (m == neg_inf()) {
    for (var i = I.lid; i < n; i += WG) { st(x + i, 0.0); }
    return;
  }
  var s = 0.0;
  for (var i = I.lid; i < n; i += WG) { s += exp(ld(x + i) - m); }
  s = wg_sum(s, I.lid);
  for (var i = I.lid; i < n; i += WG) { st(x + i, exp(ld(x + i) - m) / s); }
}

// (max, sum of exp(x - max)) of n floats at word x, for the whole workgroup; (-inf, 0) when all are -inf.
fn max_sum_exp(x: u32, n: u32, lid: u32) -> vec2<f32> {
  var m = neg_inf();
  for (var i = lid; i < n; i += WG) { m = max(m, ld(x + i)); }
  m = wg_max(m, lid);
  var s = 0.0;
  if (m != neg_inf()) {
    for (var i = lid; i < n; i += WG) { s += exp(ld(x + i) - m); }
  }
  return vec2<f32>(m, wg_sum(s, lid));
}

// args: 0 x, 1 n, 2 out. out[0] = log(sum(exp(x_i))), -inf when every x_i is -inf. One workgroup.
@compute @workgroup_size(256)
fn log_sum_exp(I: In) {
  setup(I);
  let ms = max_sum_exp(pu(0u), pu(1u), I.lid);
  if (I.lid == 0u) { st(pu(2u), select(ms.x + log(ms.y), ms.x, ms.x == neg_inf())); }
}

// args: 0 x, 1 rows, 2 n, 3 stats, 14 skip flag. stats[2r] = max of row r, stats[2r+1] = sum of exp(x - max).
@compute @workgroup_size(256)
fn row_stats(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let n = pu(2u);
  let r = wg_linear(I.wg, I.nwg);
  let ms = max_sum_exp(pu(0u) + r * n, n, I.lid);
  if (I.lid == 0u) { st(pu(3u) + 2u * r, ms.x); st(pu(3u) + 2u * r + 1u, ms.y); }
}

// args: 0 x, 1 rows, 2 n, 3 stats (from row_stats), 4 out, 14 skip flag. out[i] = sum_r softmax(x[r])[i]; x unchanged.
@compute @workgroup_size(256)
fn soft_vote(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let x = pu(0u); let rows = pu(1u); let n = pu(2u); let stats = pu(3u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= n) { return; }
  var v = 0.0;
  for (var r = 0u; r < rows; r++) {
    let m = ld(stats + 2u * r);
    if (m != neg_inf()) { v += exp(ld(x + r * n + i) - m) / ld(stats + 2u * r + 1u); }
  }
  st(pu(4u) + i, v);
}

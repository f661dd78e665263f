// The per-step pieces of a token selection decided on the GPU (TokenSelect, Wu et al. 2025, sec. 3.2-3.4)
// around the scoring, soft-vote and top-k kernels.

// Selection Cache test (sec. 3.4), one workgroup: flag = 1 when `valid` and cos(q, cached) >= threshold
// over n floats (cos = 0 when either is all zeros, as src/policies/selection.ts `cosine`), else 0 and the
// cached query becomes q (the query the new top-k is computed for). The flag is the skip flag of the
// kernels that recompute the selection.
// args: 0 q, 1 cached, 2 n, 3 threshold (f32), 4 flag, 5 valid (0: no cached selection yet)
@compute @workgroup_size(256)
fn selection_cache_test(I: In) {
  setup(I);
  let q = pu(0u); let c = pu(1u); let n = pu(2u);
  var ab = 0.0;
  var aa = 0.0;
  var bb = 0.0;
  for (var i = I.lid; i < n; i += WG) {
    let a = ld(q + i);
    let b = ld(c + i);
    ab += a * b;
    aa += a * a;
    bb += b * b;
  }
  ab = wg_sum(ab, I.lid);
  aa = wg_sum(aa, I.lid);
  bb = wg_sum(bb, I.lid);
  let cos = select(0.0, ab / sqrt(aa * bb), aa > 0.0 && bb > 0.0);
  let hit = pu(5u) != 0u && cos >= pf(3u);
  if (I.lid == 0u) { stu(pu(4u), select(0u, 1u, hit)); }
  if (!hit) {
    for (var i = I.lid; i < n; i += WG) { st(c + i, ld(q + i)); }
  }
}

// The always-attended windows of each row of a selection list: row[j] = j for j < first and
// row[first + k + j] = n - last + j for j < last (the k chosen slots between are the top-k's).
// args: 0 list (i32 words), 1 rows, 2 row stride, 3 n, 4 first, 5 last, 6 k
@compute @workgroup_size(256)
fn selection_windows(I: In) {
  setup(I);
  let f = pu(4u); let l = pu(5u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(1u) * (f + l)) { return; }
  let r = i / (f + l);
  let j = i % (f + l);
  let row = pu(0u) + r * pu(2u);
  if (j < f) { stu(row + j, j); } else { stu(row + f + pu(6u) + j - f, pu(3u) - l + j - f); }
}

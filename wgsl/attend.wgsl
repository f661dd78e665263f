// Decode attention of qHeads query heads over one KV head, split along the sequence (flash-decoding):
// attend_split gives each workgroup SPLIT tokens and writes an unnormalised partial output with its max
// and exp-sum; attend_reduce merges the splits by log-sum-exp. Dense (tokens 0..n) or gathered (idx list).
// args: 0 q, 1 qHeads, 2 d (<= 256), 3 kTable, 4 vTable, 5 pageTokens, 6 count (n or nIdx), 7 idx,
//       8 gathered (0/1), 9 scale (f32), 10 scratch (splits * qHeads * (d + 2) words), 11 out, 12 lse
const SPLIT: u32 = 256u;
const HG: u32 = 8u; // heads scored per pass over a split's keys

var<workgroup> p: array<f32, 2048>; // HG x SPLIT scores, then weights
var<workgroup> tok: array<u32, 256>;
var<workgroup> hm: array<f32, 8>;

@compute @workgroup_size(256)
fn attend_split(I: In) {
  setup(I);
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let kt = pu(3u); let vt = pu(4u); let pt = pu(5u);
  let count = pu(6u); let scale = pf(9u); let scratch = pu(10u);
  let s = wg_linear(I.wg, I.nwg);
  let lid = I.lid;
  let j = s * SPLIT + lid;
  let valid = j < count;
  var t = j;
  if (valid && pu(8u) == 1u) { t = u32(mem[pu(7u) + j]); }
  tok[lid] = t;
  let live = min(SPLIT, count - s * SPLIT);
  for (var h0 = 0u; h0 < qh; h0 += HG) {
    let hn = min(HG, qh - h0);
    var acc: array<f32, 8>; // zeroed explicitly: lavapipe kept the previous group's sums
    for (var h = 0u; h < 8u; h++) { acc[h] = 0.0; }
    if (valid) {
      let row = page_row(kt, pt, t, d);
      for (var c = 0u; c < d; c++) {
        let k = ld(row + c);
        for (var h = 0u; h < hn; h++) { acc[h] += ld(q + (h0 + h) * d + c) * k; }
      }
    }
    for (var h = 0u; h < hn; h++) { p[h * SPLIT + lid] = select(neg_inf(), scale * acc[h], valid); }
    workgroupBarrier();
    if (lid < hn) {
      var m = neg_inf();
      for (var i = 0u; i < live; i++) { m = max(m, p[lid * SPLIT + i]); }
      hm[lid] = m;
    }
    workgroupBarrier();
    for (var h = 0u; h < hn; h++) { p[h * SPLIT + lid] = select(0.0, exp(p[h * SPLIT + lid] - hm[h]), valid); }
    workgroupBarrier();
    for (var c = lid; c < d + 2u; c += SPLIT) {
      for (var h = 0u; h < hn; h++) {
        let at = scratch + (s * qh + h0 + h) * (d + 2u) + c;
        if (c < d) {
          var a = 0.0;
          for (var i = 0u; i < live; i++) { a += p[h * SPLIT + i] * ld(page_row(vt, pt, tok[i], d) + c); }
          st(at, a);
        } else if (c == d) {
          st(at, hm[h]);
        } else {
          var l = 0.0;
          for (var i = 0u; i < live; i++) { l += p[h * SPLIT + i]; }
          st(at, l);
        }
      }
    }
    workgroupBarrier();
  }
}

// One workgroup per query head: merge the splits' partials by their maxima; out = sum / l, lse = M + log l.
@compute @workgroup_size(256)
fn attend_reduce(I: In) {
  setup(I);
  let qh = pu(1u); let d = pu(2u); let count = pu(6u); let scratch = pu(10u); let out = pu(11u);
  let h = wg_linear(I.wg, I.nwg);
  let splits = (count + SPLIT - 1u) / SPLIT;
  var m = neg_inf();
  for (var s = 0u; s < splits; s++) { m = max(m, ld(scratch + (s * qh + h) * (d + 2u) + d)); }
  var l = 0.0;
  for (var s = 0u; s < splits; s++) {
    let at = scratch + (s * qh + h) * (d + 2u) + d;
    l += ld(at + 1u) * exp(ld(at) - m);
  }
  for (var c = I.lid; c < d; c += WG) {
    var a = 0.0;
    for (var s = 0u; s < splits; s++) {
      let at = scratch + (s * qh + h) * (d + 2u);
      a += ld(at + c) * exp(ld(at + d) - m);
    }
    st(out + h * d + c, a / l);
  }
  if (I.lid == 0u) { st(pu(12u) + h, m + log(l)); }
}

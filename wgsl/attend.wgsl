// Decode attention of qHeads query heads over one KV head's float32 or float16 pages (kv.*.wgsl), split along the sequence (flash-decoding):
// attend_split gives each workgroup `split` (<= 256) tokens and writes an unnormalised partial output
// with its max and exp-sum; attend_reduce merges the splits by log-sum-exp. Dense (tokens 0..n) or
// gathered (idx list). Per pass of QG = 4 heads, a split is done in three parallel steps:
//   scores: one quad per token (quad.wgsl), 64 tokens at a time;
//   weights: per-head max over the split (workgroup reduction), exp in place;
//   values: threads as (token lane, 16-byte column): a warp reads whole V rows, each thread adds its
//   tokens' weighted rows for the 4 heads, then the token lanes are summed through workgroup memory.
// The K and V row addresses are resolved once per split, so no loop waits on a page-table load.
// args: 0 q, 1 qHeads, 2 d (<= 256), 3 kTable, 4 vTable, 5 pageTokens, 6 count (n or nIdx), 7 idx,
//       8 gathered (0/1), 9 scale (f32), 10 scratch (splits * qHeads * row words, row = d + 2 rounded
//       up to a multiple of 4), 11 out, 12 lse, 13 split (tokens per workgroup, 1..256)
var<workgroup> p: array<f32, 1024>; // QG x split scores, then weights, then the token lanes' partials
var<workgroup> krow: array<u32, 256>;
var<workgroup> vrow: array<u32, 256>;

// the 4 heads' weights of token i of the split
fn weights(i: u32, S: u32) -> vec4<f32> { return vec4<f32>(p[i], p[S + i], p[2u * S + i], p[3u * S + i]); }

fn pick4(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, e: vec4<f32>, h: u32) -> vec4<f32> {
  return select(select(a, b, h == 1u), select(c, e, h == 3u), h >= 2u);
}

@compute @workgroup_size(256)
fn attend_split(I: In) {
  setup(I);
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let pt = pu(5u);
  let count = pu(6u); let scale = pf(9u); let scratch = pu(10u); let S = pu(13u);
  let s = wg_linear(I.wg, I.nwg);
  let lid = I.lid;
  let j = lid & 3u;
  let live = min(S, count - s * S);
  let row = (d + 5u) & ~3u; // scratch rows: d partial words, max, sum, padded to 16 bytes
  for (var i = lid; i < live; i += WG) {
    var t = s * S + i;
    if (pu(8u) == 1u) { t = ldu(pu(7u) + t); }
    krow[i] = kv_row(pu(3u), pt, t, d);
    vrow[i] = kv_row(pu(4u), pt, t, d);
  }
  // V step layout: C 16-byte columns (a power of two covering d) by 256 / C token lanes
  var C = 1u;
  while (4u * C < d) { C *= 2u; }
  let TL = WG / C;
  let col = 4u * (lid % C);
  let tl = lid / C;
  for (var h0 = 0u; h0 < qh; h0 += QG) {
    stage_q(q, qh, h0, d, 0u, lid); // its barriers also publish krow and vrow
    var m = neg_inf(); // lane j's running max of head h0 + j
    for (var i0 = 0u; i0 < S; i0 += 64u) { // S, not live: a uniform trip count around quad_sum4's barriers
      let i = i0 + (lid >> 2u);
      var acc = vec4<f32>(0.0);
      if (i < live) { acc = quad_dot(krow[i], 0u, d, j); }
      let sc = scale * quad_sum4(acc, lid);
      if (i < live) {
        p[j * S + i] = sc;
        m = max(m, sc);
      }
    }
    var mx = vec4<f32>(0.0);
    for (var h = 0u; h < QG; h++) { mx[h] = wg_max(select(neg_inf(), m, j == h), lid); }
    for (var k = lid; k < QG * S; k += WG) {
      p[k] = select(0.0, exp(p[k] - mx[k / S]), k % S < live);
    }
    workgroupBarrier();
    var o0 = vec4<f32>(0.0);
    var o1 = vec4<f32>(0.0);
    var o2 = vec4<f32>(0.0);
    var o3 = vec4<f32>(0.0);
    var l = vec4<f32>(0.0);
    if (col < d) {
      var i = tl;
      for (; i + 3u * TL < live; i += 4u * TL) { // four rows in flight
        let va = kv4(vrow[i], col, d);
        let vb = kv4(vrow[i + TL], col, d);
        let vc = kv4(vrow[i + 2u * TL], col, d);
        let ve = kv4(vrow[i + 3u * TL], col, d);
        let wa = weights(i, S);
        let wb = weights(i + TL, S);
        let wc = weights(i + 2u * TL, S);
        let we = weights(i + 3u * TL, S);
        l += wa + wb + wc + we;
        o0 += wa.x * va + wb.x * vb + wc.x * vc + we.x * ve;
        o1 += wa.y * va + wb.y * vb + wc.y * vc + we.y * ve;
        o2 += wa.z * va + wb.z * vb + wc.z * vc + we.z * ve;
        o3 += wa.w * va + wb.w * vb + wc.w * vc + we.w * ve;
      }
      for (; i < live; i += TL) {
        let va = kv4(vrow[i], col, d);
        let wa = weights(i, S);
        l += wa;
        o0 += wa.x * va;
        o1 += wa.y * va;
        o2 += wa.z * va;
        o3 += wa.w * va;
      }
    }
    // sum the token lanes, a head at a time, through p (free now): thread c < d adds channel c
    for (var h = 0u; h < QG; h++) {
      workgroupBarrier();
      let o = pick4(o0, o1, o2, o3, h);
      for (var k = 0u; k < 4u; k++) { p[4u * lid + k] = o[k]; }
      workgroupBarrier();
      if (lid < d && h0 + h < qh) {
        var a = 0.0;
        for (var r = 0u; r < TL; r++) { a += p[4u * (r * C) + lid]; }
        st(scratch + (s * qh + h0 + h) * row + lid, a);
      }
    }
    workgroupBarrier();
    if (lid % C == 0u) { for (var k = 0u; k < 4u; k++) { p[4u * tl + k] = l[k]; } }
    workgroupBarrier();
    if (lid < QG && h0 + lid < qh) {
      var a = 0.0;
      for (var r = 0u; r < TL; r++) { a += p[4u * r + lid]; }
      let at = scratch + (s * qh + h0 + lid) * row + d;
      st(at, mx[lid]);
      st(at + 1u, a);
    }
  }
}

// One workgroup per query head: merge the splits' partials by their maxima; out = sum / l, lse = M + log l.
// Threads are (16-byte column, split lane) as in the V step, the lanes summed through `part`.
var<workgroup> part: array<vec4<f32>, 256>;

// words c..c+3 of a split's partial output at word `at`, rescaled from its max to the overall max m
fn partial(at: u32, c: u32, d: u32, m: f32) -> vec4<f32> { return f32x4(at, c, d) * exp(ld(at + d) - m); }

@compute @workgroup_size(256)
fn attend_reduce(I: In) {
  setup(I);
  let qh = pu(1u); let d = pu(2u); let count = pu(6u); let scratch = pu(10u); let out = pu(11u);
  let S = pu(13u);
  let h = wg_linear(I.wg, I.nwg);
  let lid = I.lid;
  let splits = (count + S - 1u) / S;
  let row = (d + 5u) & ~3u; // scratch row stride (see attend_split)
  var m = neg_inf();
  for (var s = lid; s < splits; s += WG) { m = max(m, ld(scratch + (s * qh + h) * row + d)); }
  m = wg_max(m, lid);
  var l = 0.0;
  for (var s = lid; s < splits; s += WG) {
    let at = scratch + (s * qh + h) * row + d;
    l += ld(at + 1u) * exp(ld(at) - m);
  }
  l = wg_sum(l, lid);
  var C = 1u;
  while (4u * C < d) { C *= 2u; }
  let TL = WG / C;
  let col = 4u * (lid % C);
  let lane = lid / C;
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  if (col < d) {
    var s = lane;
    for (; s + 3u * TL < splits; s += 4u * TL) { // four partials in flight
      a += partial(scratch + (s * qh + h) * row, col, d, m) + partial(scratch + ((s + 2u * TL) * qh + h) * row, col, d, m);
      b += partial(scratch + ((s + TL) * qh + h) * row, col, d, m) + partial(scratch + ((s + 3u * TL) * qh + h) * row, col, d, m);
    }
    for (; s < splits; s += TL) { a += partial(scratch + (s * qh + h) * row, col, d, m); }
  }
  part[lid] = a + b;
  workgroupBarrier();
  if (lid < d) {
    var t = 0.0;
    for (var r = 0u; r < TL; r++) { t += part[r * C + lid / 4u][lid % 4u]; }
    st(out + h * d + lid, t / l);
  }
  if (lid == 0u) { st(pu(12u) + h, m + log(l)); }
}

// Decode attention on a CPU rasteriser (SwiftShader, lavapipe), over float32 or float16 pages (kv.*.wgsl): one thread a query head walks the tokens
// in order with an online softmax (Milakov & Gimelshein 2018, "Online normalizer calculation for
// softmax"), no workgroup memory and no barrier, and writes out and lse itself (no scratch, no merge).
// attend_split's 256-thread workgroups and their barriers run slowly on a CPU, which takes a workgroup's
// invocations a few SIMD lanes at a time. Same args as attend_split (split and scratch unused).
@compute @workgroup_size(64)
fn attend_rows(I: In) {
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let pt = pu(5u);
  let count = pu(6u); let scale = pf(9u); let out = pu(11u);
  let h = wg_linear(I.wg, I.nwg) * 64u + I.lid;
  if (h >= qh) { return; }
  let qr = q + h * d;
  let C = (d + 3u) / 4u;
  var acc: array<vec4<f32>, 64>; // d <= 256
  var m = neg_inf();
  var l = 0.0;
  for (var i = 0u; i < count; i++) {
    var t = i;
    if (pu(8u) == 1u) { t = ldu(pu(7u) + i); }
    let kr = kv_row(pu(3u), pt, t, d);
    let vr = kv_row(pu(4u), pt, t, d);
    var s4 = vec4<f32>(0.0);
    // the query is float32 whatever the pages hold
    for (var c = 0u; c < C; c++) { s4 += f32x4(qr, 4u * c, d) * kv4(kr, 4u * c, d); }
    let s = ((s4.x + s4.y) + (s4.z + s4.w)) * scale;
    let mn = max(m, s);
    let corr = exp(m - mn); // 0 at the first token (m = -inf)
    let p = exp(s - mn);
    l = l * corr + p;
    for (var c = 0u; c < C; c++) { acc[c] = acc[c] * corr + p * kv4(vr, 4u * c, d); }
    m = mn;
  }
  for (var c = 0u; c < d; c++) { st(out + h * d + c, acc[c / 4u][c % 4u] / l); }
  st(pu(12u) + h, m + log(l));
}

// The Llama runtime's cache kernels (src/model/gpu-forward.ts): appending a chunk's keys and values to
// the paged float32 cache (append_f16.wgsl for float16 pages), and the chunk's causal attention over
// float32 or float16 pages (kv.*.wgsl). Per KV head g, `tabs` holds 4
// words: the key and value page tables (byte pointers), the head's first new slot, and its row count
// after the append, so heads with ragged lengths (per-head eviction budgets) share one dispatch.

// k, v [T][kvHeads][d] (the projections' output) to slots first_g + t of each head's pages.
// args: 0 k, 1 v, 2 T, 3 kvHeads, 4 d, 5 tabs, 6 pageTokens
@compute @workgroup_size(256)
fn append_rows(I: In) {
  setup(I);
  let kvh = pu(3u); let d = pu(4u); let pt = pu(6u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(2u) * kvh * d) { return; }
  let c = i % d;
  let th = i / d;
  let g = th % kvh;
  let t = th / kvh;
  let tab = pu(5u) + g * 4u;
  let slot = ldu(tab + 2u) + t;
  st(page_row(ldu(tab) / 4u, pt, slot, d) + c, ld(pu(0u) + i));
  st(page_row(ldu(tab + 1u) / 4u, pt, slot, d) + c, ld(pu(1u) + i));
}

// Causal attention of T query rows x hq heads (query head h reads KV head h / group): one workgroup a
// (row, head); keys in tiles of 64, a thread scoring one key, then an online-softmax update of the
// output whose channels the threads share (c, c + 64, ...: d <= 256). Row t of head g sees the first
// min(n_g, first_g + 1 + t) keys, as ModelKernels.attendCausal with visible0 = first + 1.
// args: 0 q, 1 qStride (floats a row), 2 hq, 3 group, 4 d, 5 tabs, 6 pageTokens, 7 scale (f32),
//       8 out, 9 outStride
const TILE: u32 = 64u;
var<workgroup> qv: array<f32, 256>;
var<workgroup> w: array<f32, 64>;
var<workgroup> seen: u32;

@compute @workgroup_size(64)
fn attend_causal(I: In) {
  setup(I);
  let hq = pu(2u); let d = pu(4u); let pt = pu(6u); let scale = pf(7u);
  let r = wg_linear(I.wg, I.nwg);
  let t = r / hq;
  let h = r % hq;
  let tab = pu(5u) + (h / pu(3u)) * 4u;
  let kt = ldu(tab) / 4u;
  let vt = ldu(tab + 1u) / 4u;
  if (I.lid == 0u) { seen = min(ldu(tab + 3u), ldu(tab + 2u) + 1u + t); }
  let q = pu(0u) + t * pu(1u) + h * d;
  for (var c = I.lid; c < d; c += TILE) { qv[c] = ld(q + c); }
  // a storage read is not uniform to WGSL: the row's key count comes back through workgroup memory
  let n = workgroupUniformLoad(&seen);
  var acc: array<f32, 4>;
  for (var k = 0u; k < 4u; k++) { acc[k] = 0.0; }
  var m = neg_inf();
  var l = 0.0;
  for (var s0 = 0u; s0 < n; s0 += TILE) {
    let j = s0 + I.lid;
    var sc = neg_inf();
    if (j < n) {
      let row = kv_row(kt, pt, j, d);
      var a = 0.0;
      for (var c = 0u; c < d; c++) { a += qv[c] * kv1(row, c); }
      sc = a * scale;
    }
    w[I.lid] = sc;
    workgroupBarrier();
    let live = min(TILE, n - s0);
    var mt = m;
    for (var i = 0u; i < live; i++) { mt = max(mt, w[i]); }
    workgroupBarrier();
    w[I.lid] = select(0.0, exp(sc - mt), j < n);
    workgroupBarrier();
    let corr = exp(m - mt);
    var ls = 0.0;
    for (var i = 0u; i < live; i++) { ls += w[i]; }
    l = l * corr + ls;
    for (var k = 0u; k < 4u; k++) {
      let c = I.lid + k * TILE;
      if (c < d) {
        var a = acc[k] * corr;
        for (var i = 0u; i < live; i++) { a += w[i] * kv1(kv_row(vt, pt, s0 + i, d), c); }
        acc[k] = a;
      }
    }
    m = mt;
    workgroupBarrier();
  }
  let o = pu(8u) + t * pu(9u) + h * d;
  for (var k = 0u; k < 4u; k++) {
    let c = I.lid + k * TILE;
    if (c < d) { st(o + c, acc[k] / l); }
  }
}

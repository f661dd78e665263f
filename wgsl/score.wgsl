// GQA key scoring over a page table of float32 or float16 keys (kv.*.wgsl): out[h*n + i] = scale * (q[h] . k_i) for h < qHeads, i < n.
// One quad per key row (quad.wgsl: coalesced 16-byte loads, the query staged in workgroup memory), 64
// keys per workgroup pass, workgroups striding over the keys; heads in groups of QG = 4.
// args: 0 q, 1 qHeads, 2 d, 3 table, 4 pageTokens, 5 n, 6 scale (f32), 7 out (word indices), 8 groups,
// 14 skip flag (prelude.wgsl)
// (the workgroup count: loops around barriers must be uniform, and WGSL's uniformity analysis counts
// the workgroup id of the In struct as non-uniform, so trip counts come from the arguments)
@compute @workgroup_size(256)
fn score_keys(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let table = pu(3u);
  let pt = pu(4u); let n = pu(5u); let scale = pf(6u); let out = pu(7u);
  let j = I.lid & 3u;
  let first = wg_linear(I.wg, I.nwg) * 64u;
  let stride = pu(8u) * 64u;
  let iters = (n + stride - 1u) / stride;
  for (var h0 = 0u; h0 < qh; h0 += QG) {
    for (var it = 0u; it < iters; it++) {
      let i = first + it * stride + (I.lid >> 2u);
      var acc = vec4<f32>(0.0);
      for (var c0 = 0u; c0 < d; c0 += QD) {
        // the staged query serves every key of the workgroup unless d needs more than one stage
        if (d > QD || it == 0u) { stage_q(q, qh, h0, d, c0, I.lid); }
        if (i < n) { acc += quad_dot(kv_row(table, pt, i, d), c0, min(QD, d - c0), j); }
      }
      let s = quad_sum4(acc, I.lid);
      if (i < n && h0 + j < qh) { st(out + (h0 + j) * n + i, scale * s); }
    }
  }
}

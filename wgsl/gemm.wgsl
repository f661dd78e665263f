// The prefill matmul: y[t][o] = x[t] . w[o] + bias[o] for a chunk of T rows, x [T][K], w [O][K] (the
// arena's row-major Hugging Face layout: both operands run along K, "NT"). Register-blocked and tiled
// through workgroup memory, as in the classic SGEMM kernels (Volkov & Demmel 2008; CUTLASS's SIMT
// path): a 256-thread workgroup owns a 64 x 64 output tile, each thread a 4 x 4 block of it in
// registers; K advances 16 at a time, both 64 x 16 slices staged k-major in workgroup memory so a
// thread's inner step is two 16-byte reads and 16 multiply-adds. Edges (T, O not multiples of 64, K
// not of 16) read zeros and write nothing. 16-byte global loads when x, w and K allow them, the next
// stage's issued before the current one is multiplied.
// args: 0 x, 1 w, 2 bias, 3 y, 4 T, 5 K (inDim), 6 O (outDim), 7 hasBias
const GT: u32 = 64u; // output tile edge
const GK: u32 = 16u; // K per stage
var<workgroup> xs: array<vec4<f32>, 256>; // [GK][GT / 4]: xs[k * 16 + r / 4][r % 4] = x[t0 + r][k0 + k]
var<workgroup> ws: array<vec4<f32>, 256>; // [GK][GT / 4], the same for w's rows

// words k..k+3 of row `row` (of `rows`, each K words) at word `base`; zeros past the edges
fn gemm_load4(base: u32, row: u32, rows: u32, K: u32, k: u32, wide: bool) -> vec4<f32> {
  var v = vec4<f32>(0.0);
  if (row >= rows) { return v; }
  let i = base + row * K + k;
  if (wide) {
    if (k < K) { v = ld4(i); } // K % 4 == 0: the whole quad is in the row
  } else {
    for (var j = 0u; j < 4u; j++) { if (k + j < K) { v[j] = ld(i + j); } }
  }
  return v;
}

@compute @workgroup_size(256)
fn matmul_tiled(I: In) {
  setup(I);
  let x = pu(0u); let w = pu(1u); let y = pu(3u); let T = pu(4u); let K = pu(5u); let O = pu(6u);
  let o_tiles = (O + GT - 1u) / GT;
  let g = wg_linear(I.wg, I.nwg);
  let t0 = (g / o_tiles) * GT; // >= T past the last tile (a 2-D grid's spare workgroups): zeros in, nothing out
  let o0 = (g % o_tiles) * GT;
  let wide = ((x | w | K) & 3u) == 0u;
  // staging: thread -> (row lr of the tile, k quad lk); a warp covers 32 rows of one quad, so its
  // k-major stores fall in 32 distinct banks
  let lr = I.lid % GT;
  let lk = (I.lid / GT) * 4u;
  // compute: thread -> rows t0 + 4 ty .. +3, columns o0 + 4 tx .. +3
  let tx = I.lid % 16u;
  let ty = I.lid / 16u;
  var acc: array<vec4<f32>, 4>;
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
  var a = gemm_load4(x, t0 + lr, T, K, lk, wide);
  var b = gemm_load4(w, o0 + lr, O, K, lk, wide);
  for (var k0 = 0u; k0 < K; k0 += GK) {
    for (var j = 0u; j < 4u; j++) {
      xs[(lk + j) * 16u + lr / 4u][lr % 4u] = a[j];
      ws[(lk + j) * 16u + lr / 4u][lr % 4u] = b[j];
    }
    workgroupBarrier();
    // the next stage's loads (zeros past K) are in flight while this one is multiplied: with few
    // warps on a multiprocessor nothing else would hide their latency
    a = gemm_load4(x, t0 + lr, T, K, k0 + GK + lk, wide);
    b = gemm_load4(w, o0 + lr, O, K, k0 + GK + lk, wide);
    for (var k = 0u; k < GK; k++) { outer4(&acc, xs[k * 16u + ty], ws[k * 16u + tx]); }
    workgroupBarrier();
  }
  let o = o0 + 4u * tx;
  if (o >= O) { return; }
  var bias = vec4<f32>(0.0);
  if (pu(7u) == 1u) { for (var j = 0u; j < 4u; j++) { if (o + j < O) { bias[j] = ld(pu(2u) + o + j); } } }
  let wide_out = ((y | O) & 3u) == 0u;
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + 4u * ty + i;
    if (t < T) {
      let v = acc[i] + bias;
      let at = y + t * O + o;
      if (wide_out) {
        st4(at, v); // O % 4 == 0 and o < O: the whole quad is in the row
      } else {
        for (var j = 0u; j < 4u; j++) { if (o + j < O) { st(at + j, v[j]); } }
      }
    }
  }
}

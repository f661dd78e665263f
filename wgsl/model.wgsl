// The Llama runtime's kernels (ModelKernels in src/backend/model-kernels.ts), word indices as arguments.

// y[t][o] = x[t] . w[o] + bias[o]; x [T][inDim], w [outDim][inDim]. 16 x 16 output tiles through
// workgroup memory. args: 0 x, 1 w, 2 bias, 3 y, 4 T, 5 inDim, 6 outDim, 7 hasBias
var<workgroup> xs: array<f32, 256>;
var<workgroup> ws: array<f32, 256>;
@compute @workgroup_size(256)
fn matmul(I: In) {
  setup(I);
  let x = pu(0u); let w = pu(1u); let y = pu(3u); let T = pu(4u); let K = pu(5u); let O = pu(6u);
  let o_tiles = (O + 15u) / 16u;
  let g = wg_linear(I.wg, I.nwg);
  let t0 = (g / o_tiles) * 16u;
  let o0 = (g % o_tiles) * 16u;
  let r = I.lid / 16u;
  let c = I.lid % 16u;
  var acc = 0.0;
  for (var k0 = 0u; k0 < K; k0 += 16u) {
    let kx = k0 + c;
    xs[I.lid] = select(0.0, ld(x + (t0 + r) * K + kx), t0 + r < T && kx < K);
    ws[I.lid] = select(0.0, ld(w + (o0 + r) * K + kx), o0 + r < O && kx < K);
    workgroupBarrier();
    for (var i = 0u; i < 16u; i++) { acc += xs[r * 16u + i] * ws[c * 16u + i]; }
    workgroupBarrier();
  }
  if (t0 + r < T && o0 + c < O) {
    let b = select(0.0, ld(pu(2u) + o0 + c), pu(7u) == 1u);
    st(y + (t0 + r) * O + o0 + c, acc + b);
  }
}

// One token (T = 1): y[o] = x . w[o] + bias[o], one workgroup per output row, coalesced over inDim.
// args as matmul
@compute @workgroup_size(256)
fn matvec(I: In) {
  setup(I);
  let x = pu(0u); let w = pu(1u); let y = pu(3u); let K = pu(5u);
  let o = wg_linear(I.wg, I.nwg);
  var a = 0.0;
  for (var k = I.lid; k < K; k += WG) { a += ld(x + k) * ld(w + o * K + k); }
  a = wg_sum(a, I.lid);
  if (I.lid == 0u) { st(y + o, a + select(0.0, ld(pu(2u) + o), pu(7u) == 1u)); }
}

// One token on a CPU rasteriser (SwiftShader, lavapipe): one thread per output row, no workgroup
// memory and no barrier. A CPU runs a workgroup's invocations a few SIMD lanes at a time and pays for
// each barrier with a switch between them, so matvec's workgroup a row (4096 of them for a 4096-token LM
// head) cost seconds a token there; here a thread walks its row in 16-byte loads as a CPU core would.
// Uncoalesced on a real GPU, where matvec stays. args as matmul
@compute @workgroup_size(64)
fn matvec_rows(I: In) {
  let x = pu(0u); let w = pu(1u); let y = pu(3u); let K = pu(5u); let O = pu(6u);
  let o = wg_linear(I.wg, I.nwg) * 64u + I.lid;
  if (o >= O) { return; }
  let row = w + o * K;
  var a4 = vec4<f32>(0.0);
  var k = 0u;
  // 16-byte loads when both rows start on a 16-byte boundary (the weights always do; x does unless offset)
  if (((x | row) & 3u) == 0u) {
    for (; k + 4u <= K; k += 4u) { a4 += ld4(x + k) * ld4(row + k); }
  }
  var a = (a4.x + a4.y) + (a4.z + a4.w);
  for (; k < K; k++) { a += ld(x + k) * ld(row + k); }
  st(y + o, a + select(0.0, ld(pu(2u) + o), pu(7u) == 1u));
}

// out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * g, one workgroup per row (out may alias x).
// args: 0 x, 1 g, 2 out, 3 T, 4 dim, 5 eps (f32)
@compute @workgroup_size(256)
fn rmsnorm(I: In) {
  setup(I);
  let dim = pu(4u);
  let t = wg_linear(I.wg, I.nwg);
  let x = pu(0u) + t * dim;
  let out = pu(2u) + t * dim;
  var ss = 0.0;
  for (var k = I.lid; k < dim; k += WG) { let v = ld(x + k); ss += v * v; }
  ss = wg_sum(ss, I.lid);
  let inv = 1.0 / sqrt(ss / f32(dim) + pf(5u));
  for (var k = I.lid; k < dim; k += WG) { st(out + k, ld(x + k) * inv * ld(pu(1u) + k)); }
}

// In-place rotate_half RoPE of x [T][heads][d] with cos, sin [T][d/2]; one thread per rotated pair.
// args: 0 x, 1 T, 2 heads, 3 d, 4 cos, 5 sin
@compute @workgroup_size(256)
fn rope(I: In) {
  setup(I);
  let heads = pu(2u); let half = pu(3u) / 2u;
  let g = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (g >= pu(1u) * heads * half) { return; }
  let i = g % half;
  let th = g / half;
  let t = th / heads;
  let a = pu(0u) + th * 2u * half;
  let c = ld(pu(4u) + t * half + i);
  let s = ld(pu(5u) + t * half + i);
  let x1 = ld(a + i);
  let x2 = ld(a + i + half);
  st(a + i, x1 * c - x2 * s);
  st(a + i + half, x2 * c + x1 * s);
}

// out[i] = silu(gate[i]) * up[i] (out may alias gate). args: 0 gate, 1 up, 2 out, 3 n
@compute @workgroup_size(256)
fn swiglu(I: In) {
  setup(I);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(3u)) { return; }
  let g = ld(pu(0u) + i);
  st(pu(2u) + i, g / (1.0 + exp(-g)) * ld(pu(1u) + i));
}

// y[i] += x[i]. args: 0 y, 1 x, 2 n
@compute @workgroup_size(256)
fn add_in_place(I: In) {
  setup(I);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(2u)) { return; }
  st(pu(0u) + i, ld(pu(0u) + i) + ld(pu(1u) + i));
}

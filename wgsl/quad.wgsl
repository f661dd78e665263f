// Rows read by quads (4 lanes per row, Quest-style bounds and key scoring alike): lane j of a quad reads
// the row's 16-byte columns j, j+4, j+8, ..., so each load of a warp covers 64 contiguous bytes of 8
// rows (whole 32-byte sectors) instead of 4 bytes of 32 rows, and quad_sum4 (reduce.*.wgsl) adds the
// quad's 4 partial sums. The query of up to QG heads is staged once per workgroup as one vec4 per
// channel (the heads in the components), so a key word costs one vec4 multiply-add for all 4 heads.
// Included by the files whose kernels use it (kernels.ts: INCLUDES).
const QG: u32 = 4u;
const QD: u32 = 256u; // channels staged at a time
var<workgroup> qs: array<vec4<f32>, 256>;

// qs[c] = (q[h0][c0 + c], ..., q[h0 + 3][c0 + c]) for c < min(QD, d - c0), 0 for heads >= qh. Holds
// barriers: every lane of the workgroup calls it.
fn stage_q(q: u32, qh: u32, h0: u32, d: u32, c0: u32, lid: u32) {
  workgroupBarrier(); // the previous stage's readers are done
  for (var c = lid; c < min(QD, d - c0); c += WG) {
    var v = vec4<f32>(0.0);
    for (var h = 0u; h < QG; h++) {
      if (h0 + h < qh) { v[h] = ld(q + (h0 + h) * d + c0 + c); }
    }
    qs[c] = v;
  }
  workgroupBarrier();
}

fn dot_q4(c: u32, k: vec4<f32>) -> vec4<f32> {
  return qs[c] * k.x + qs[c + 1u] * k.y + qs[c + 2u] * k.z + qs[c + 3u] * k.w;
}

// Lane j's share of (q_h . row) for the 4 staged heads over elements c0..c0+len (len <= QD) of the K
// row `row` (kv.*.wgsl: float32 or float16 pages): 16-byte loads of float32 rows (8-byte of float16
// ones), four in flight (a d = 128 row is two round trips), when kv_aligned and len a multiple of 4;
// element loads otherwise.
fn quad_dot(row: u32, c0: u32, len: u32, j: u32) -> vec4<f32> {
  return quad_dot_from(row, c0, len, j, 4u * j);
}

// quad_dot with the lane's first 128 elements (a whole d = 128 row) read by eight 16-byte loads issued
// together, one round trip instead of two; quad_dot's products, summed in another order.
fn quad_dot_wide(row: u32, c0: u32, len: u32, j: u32) -> vec4<f32> {
  if (len < 128u || (len & 3u) != 0u || (c0 & 3u) != 0u || !kv_aligned(row, len)) { return quad_dot(row, c0, len, j); }
  let c = 4u * j;
  let k0 = kv4a(row, c0 + c);
  let k1 = kv4a(row, c0 + c + 16u);
  let k2 = kv4a(row, c0 + c + 32u);
  let k3 = kv4a(row, c0 + c + 48u);
  let k4 = kv4a(row, c0 + c + 64u);
  let k5 = kv4a(row, c0 + c + 80u);
  let k6 = kv4a(row, c0 + c + 96u);
  let k7 = kv4a(row, c0 + c + 112u);
  let a = dot_q4(c, k0) + dot_q4(c + 32u, k2) + dot_q4(c + 64u, k4) + dot_q4(c + 96u, k6);
  let b = dot_q4(c + 16u, k1) + dot_q4(c + 48u, k3) + dot_q4(c + 80u, k5) + dot_q4(c + 112u, k7);
  return quad_dot_from(row, c0, len, j, c + 128u) + a + b;
}

// quad_dot's sum over the lane's columns from c (c - 4j a multiple of 16) to len.
fn quad_dot_from(row: u32, c0: u32, len: u32, j: u32, start: u32) -> vec4<f32> {
  var a = vec4<f32>(0.0);
  if ((len & 3u) == 0u && (c0 & 3u) == 0u && kv_aligned(row, len)) {
    var b = vec4<f32>(0.0);
    var c = start;
    for (; c + 48u < len; c += 64u) {
      let k0 = kv4a(row, c0 + c);
      let k1 = kv4a(row, c0 + c + 16u);
      let k2 = kv4a(row, c0 + c + 32u);
      let k3 = kv4a(row, c0 + c + 48u);
      a += dot_q4(c, k0) + dot_q4(c + 32u, k2);
      b += dot_q4(c + 16u, k1) + dot_q4(c + 48u, k3);
    }
    for (; c < len; c += 16u) { a += dot_q4(c, kv4a(row, c0 + c)); }
    a += b;
  } else {
    for (var c = start - 3u * j; c < len; c += 4u) { a += qs[c] * kv1(row, c0 + c); }
  }
  return a;
}

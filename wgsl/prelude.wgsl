// The arena (byte pointer p is word p / 4) and the 16 argument words of one dispatch. The arena is
// typed as vec4 words so kernels can make 16-byte loads (ld4); WebGPU forbids a second, aliasing
// binding of the same buffer, and a component reference is a plain 4-byte access (WGSL: each vector
// component is its own memory location).
@group(0) @binding(0) var<storage, read_write> mem: array<vec4<u32>>;
struct Args { a: array<vec4<u32>, 4> }
@group(0) @binding(1) var<uniform> args: Args;

const WG: u32 = 256u;

fn pu(i: u32) -> u32 { return args.a[i / 4u][i % 4u]; }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
fn ldu(i: u32) -> u32 { return mem[i >> 2u][i & 3u]; }
fn stu(i: u32, v: u32) { mem[i >> 2u][i & 3u] = v; }
fn ld(i: u32) -> f32 { return bitcast<f32>(ldu(i)); }
fn st(i: u32, v: f32) { stu(i, bitcast<u32>(v)); }
// Words i..i+3 in one 16-byte load; i must be a multiple of 4.
fn ld4(i: u32) -> vec4<f32> { return bitcast<vec4<f32>>(mem[i >> 2u]); }
// Words i..i+3 in one 16-byte store; i must be a multiple of 4.
fn st4(i: u32, v: vec4<f32>) { mem[i >> 2u] = bitcast<vec4<u32>>(v); }
// -inf cannot be a WGSL constant; argument word 15 is always 0, so this is a runtime value.
fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u | (args.a[3].w & 0u)); }

// Word index of row j of a paged stream: table holds byte pointers to pages of pageTokens rows of d words.
fn page_row(table: u32, page_tokens: u32, j: u32, d: u32) -> u32 {
  return ldu(table + j / page_tokens) / 4u + (j % page_tokens) * d;
}

// Float32 words c..c+3 of the row at word `row`, zeros from d on (one 16-byte load when aligned).
fn f32x4(row: u32, c: u32, d: u32) -> vec4<f32> {
  if (((row | d) & 3u) == 0u) {
    if (c < d) { return ld4(row + c); }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var k = 0u; k < 4u; k++) { if (c + k < d) { v[k] = ld(row + c + k); } }
  return v;
}

// Elements c..c+3 (c a multiple of 4) of the K/V row `row` of d elements, zeros from d on: every module
// pastes one of kv.f32.wgsl / kv.f16.wgsl, which give kv_aligned, kv4a and kv1 (WGSL resolves
// module-scope names in any order).
fn kv4(row: u32, c: u32, d: u32) -> vec4<f32> {
  if (kv_aligned(row, d)) {
    if (c < d) { return kv4a(row, c); }
    return vec4<f32>(0.0);
  }
  var v = vec4<f32>(0.0);
  for (var k = 0u; k < 4u; k++) { if (c + k < d) { v[k] = kv1(row, c + k); } }
  return v;
}

// Workgroups are laid out 2-D (x up to 65535) when a grid is large; this is the linear workgroup number.
fn wg_linear(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

// Argument word 14 is a skip flag: 0, or 1 + the word index of a flag that, when nonzero, makes the
// dispatch do nothing (a Selection Cache hit decided on the GPU skips the selection's kernels without a
// readback). Uniform through workgroup memory, so callers may return before their barriers.
var<workgroup> skip_word: u32;
fn skipped(lid: u32) -> bool {
  if (lid == 0u) {
    let at = pu(14u);
    skip_word = select(0u, ldu(at - 1u), at != 0u);
  }
  return workgroupUniformLoad(&skip_word) != 0u;
}

// The order-preserving key of float bits (the top-k kernels'; assembly/kernels/topk.ts sortKey): NaN
// below -Infinity, -0 == +0. Read from the bits, so no float path can quiet or canonicalise a NaN.
fn radix_key(b: u32) -> u32 {
  if ((b & 0x7fffffffu) > 0x7f800000u) { return 0u; } // NaN: below everything
  if (b == 0x80000000u) { return 0x80000000u; } // -0 == +0
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// (keys > t, keys == t) among the floats [lo, hi) at word x: a thread's run in the top-k's output pass.
fn count_run(x: u32, lo: u32, hi: u32, t: u32) -> vec2<u32> {
  var c = vec2<u32>(0u);
  for (var i = lo; i < hi; i++) {
    let key = radix_key(ldu(x + i));
    c += vec2<u32>(select(0u, 1u, key > t), select(0u, 1u, key == t));
  }
  return c;
}

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

// Workgroups are laid out 2-D (x up to 65535) when a grid is large; this is the linear workgroup number.
fn wg_linear(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.y * nwg.x + wg.x; }

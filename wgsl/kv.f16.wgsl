// Float16 pages (kvDtype 'float16', the KV store's F16 format): a row of d (even) elements is d / 2
// words, element c in the low (c even) or high half of word c / 2, the byte layout of the wasm heap
// (little-endian halves). Elements are widened to f32 by half2 (half.native.wgsl: shader-f16's
// bitcast to vec2<f16>; half.unpack.wgsl: core WGSL's unpack2x16float), so every sum stays in f32, as
// in the wasm F16 kernels. Same functions as kv.f32.wgsl.
fn kv_row(table: u32, page_tokens: u32, j: u32, d: u32) -> u32 {
  return ldu(table + j / page_tokens) / 4u + (j % page_tokens) * (d >> 1u);
}
// four elements are two whole words whenever d is a multiple of 4
fn kv_aligned(row: u32, d: u32) -> bool { return (d & 3u) == 0u; }
fn kv4a(row: u32, c: u32) -> vec4<f32> {
  let i = row + (c >> 1u);
  return vec4<f32>(half2(ldu(i)), half2(ldu(i + 1u)));
}
fn kv1(row: u32, c: u32) -> f32 { return half2(ldu(row + (c >> 1u)))[c & 1u]; }

// Kernels over packed KV pages, the GPU twins of the compute core's fused kernels (assembly/kernels/
// packed.ts; layout: src/cache/formats.ts PackedLayout). Codes meet the query (or the attention weight)
// in registers; no float32 copy of the keys or values is made.
//   int8/4/2/1: a float16 (scale, min) per group of 32 codes, read as scale * code + min; keys group 32
//   tokens of one channel, values 32 channels of one token. Element e of a group sits in byte
//   e % chunk of its chunk (chunk = 4 x bits bytes), at bit bits x (e / chunk).
//   ternary values (bits 0): 7-byte chunks, element e the base-3 digit e / 7 of byte e % 7 (codes t + 1),
//   one float16 scale a group, read as scale * code - scale.
// Byte pointers are byte addresses in the arena; page tables (word indices) hold byte pointers.

const PG: u32 = 32u; // codes a group
const TERNARY_CHUNK: u32 = 7u;

// byte at byte address a
fn ld_byte(a: u32) -> u32 { return (ldu(a >> 2u) >> ((a & 3u) * 8u)) & 0xffu; }
// the float16 at byte address a (even), widened
fn ld_half(a: u32) -> f32 {
  let w = unpack2x16float(ldu(a >> 2u));
  return select(w.x, w.y, (a & 2u) != 0u);
}
// code of element e of the group chunk at byte address p: `bits`-bit (chunk = 4 x bits bytes) or ternary (bits 0)
fn code_at(p: u32, bits: u32, e: u32) -> f32 {
  if (bits == 0u) {
    var b = ld_byte(p + e % TERNARY_CHUNK);
    for (var k = 0u; k < e / TERNARY_CHUNK; k++) { b = b / 3u; }
    return f32(b % 3u);
  }
  let chunk = 4u * bits;
  return f32((ld_byte(p + e % chunk) >> (bits * (e / chunk))) & ((1u << bits) - 1u));
}

// Byte addresses of token i's key group (within the page table's stream): its codes (x), its metadata (y).
fn key_group(table: u32, pt: u32, d: u32, bits: u32, i: u32) -> vec2<u32> {
  let gpp = pt / PG;
  let g = i / PG;
  let page = ldu(table + g / gpp);
  let tg = g % gpp;
  let line = d * 4u * bits;
  return vec2<u32>(page + tg * line, page + gpp * line + tg * d * 4u);
}

// Key channel c, dequantized, of element e of the key group at kg (key_group).
fn packed_key(kg: vec2<u32>, bits: u32, e: u32, c: u32) -> f32 {
  let code = code_at(kg.x + c * 4u * bits, bits, e);
  let md = kg.y + c * 4u;
  return ld_half(md) * code + ld_half(md + 2u);
}

// Value channel c of token i, dequantized (vd channels a row, in groups of 32: the last may be partial).
fn packed_value(table: u32, pt: u32, vd: u32, bits: u32, i: u32, c: u32) -> f32 {
  let page = ldu(table + i / pt);
  let cgs = (vd + PG - 1u) / PG;
  let ternary = bits == 0u;
  let chunk = select(4u * bits, TERNARY_CHUNK, ternary);
  let group = (i % pt) * cgs + c / PG;
  let code = code_at(page + group * chunk, bits, c % PG);
  let md = page + pt * cgs * chunk + group * select(4u, 2u, ternary);
  let s = ld_half(md);
  return s * code + select(ld_half(md + 2u), -s, ternary);
}

// out[h * n + i] = scale * (q[h] . k_i): one thread a key, the heads four at a time.
// args: 0 q, 1 qHeads, 2 d, 3 table, 4 pageTokens, 5 n, 6 bits, 7 scale (f32), 8 out (word indices)
@compute @workgroup_size(256)
fn score_packed_keys(I: In) {
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let table = pu(3u);
  let pt = pu(4u); let n = pu(5u); let bits = pu(6u); let scale = pf(7u); let out = pu(8u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= n) { return; }
  let kg = key_group(table, pt, d, bits, i);
  for (var h0 = 0u; h0 < qh; h0 += 4u) {
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < d; c++) {
      let k = packed_key(kg, bits, i % PG, c);
      var qv = vec4<f32>(0.0);
      for (var j = 0u; j < 4u; j++) {
        if (h0 + j < qh) { qv[j] = ld(q + (h0 + j) * d + c); }
      }
      acc += qv * k;
    }
    for (var j = 0u; j < 4u; j++) {
      if (h0 + j < qh) { st(out + (h0 + j) * n + i, scale * acc[j]); }
    }
  }
}

// out[r * outStride + c] = sum_i softmax(s[r])[i] v_i[c] over n packed values, one thread an output
// element; with lse, lse[r] = the log-sum-exp of s[r] (stats from row_stats: max, sum of exp(s - max)).
// args: 0 s (rows x n scores), 1 rows, 2 n, 3 stats, 4 value table, 5 pageTokens, 6 vd, 7 bits (0:
// ternary), 8 out, 9 outStride (floats), 10 lse, 11 whether to write lse
@compute @workgroup_size(256)
fn attend_packed_values(I: In) {
  let s = pu(0u); let rows = pu(1u); let n = pu(2u); let stats = pu(3u); let table = pu(4u);
  let pt = pu(5u); let vd = pu(6u); let bits = pu(7u);
  let x = wg_linear(I.wg, I.nwg) * WG + I.lid;
  let r = x / vd;
  let c = x % vd;
  if (r >= rows) { return; }
  let m = ld(stats + 2u * r);
  let sum = ld(stats + 2u * r + 1u);
  var acc = 0.0;
  for (var i = 0u; i < n; i++) {
    acc += exp(ld(s + r * n + i) - m) * packed_value(table, pt, vd, bits, i, c);
  }
  st(pu(8u) + r * pu(9u) + c, acc / sum);
  if (c == 0u && pu(11u) != 0u) { st(pu(10u) + r, m + log(sum)); }
}

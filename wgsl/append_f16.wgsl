// Appending a chunk's keys and values to float16 pages (the runtime's float16 cache on the GPU): the
// float32 rows are rounded to halves in integer arithmetic on their bits, never by a float conversion,
// whose rounding WGSL leaves to the implementation (pack2x16float may round either way). The rule is
// the compute core's toFloat16 (assembly/kernels/simd.ts floatToHalf; src/backend/half.ts is the
// TypeScript twin): nearest, ties to even; magnitudes from 65520 up saturate to +-65504. So a page
// written here holds the bytes the CPU would write. NaN becomes a quiet half NaN (0x7e00 with the sign):
// the CPU store refuses a NaN append, which a GPU kernel cannot do mid-batch.

// x >> sh rounded to nearest, ties to even (1 <= sh <= 24)
fn shr_even(x: u32, sh: u32) -> u32 {
  let q = x >> sh;
  let rem = x & ((1u << sh) - 1u);
  let half = 1u << (sh - 1u);
  return q + select(0u, 1u, rem > half || (rem == half && (q & 1u) == 1u));
}

// The half nearest the float32 with bits b, as above; returns the 16 bits.
fn to_half(b: u32) -> u32 {
  let s = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return s | 0x7e00u; } // NaN
  if (a >= 0x477ff000u) { return s | 0x7bffu; } // >= 65520 (and inf): saturate
  if (a >= 0x38800000u) { return s | shr_even(a - 0x38000000u, 13u); } // normal: rebias 127 -> 15; a carry moves the exponent
  let e = a >> 23u;
  if (e < 102u) { return s; } // below 2^-25: zero (2^-25 itself is the tie, to the even 0, handled below)
  // subnormal half: the value in quanta of 2^-24 is the full mantissa (implicit bit set) >> (126 - e)
  return s | shr_even((a & 0x7fffffu) | 0x800000u, 126u - e);
}

// k, v [T][kvHeads][d] (float32, d even) to slots first_g + t of each head's float16 pages, one thread a
// pair of elements (one word). tabs as runtime.wgsl's append_rows.
// args: 0 k, 1 v, 2 T, 3 kvHeads, 4 d, 5 tabs, 6 pageTokens
@compute @workgroup_size(256)
fn append_rows_f16(I: In) {
  setup(I);
  let kvh = pu(3u); let d = pu(4u); let pt = pu(6u);
  let hw = d >> 1u;
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= pu(2u) * kvh * hw) { return; }
  let c = i % hw;
  let th = i / hw; // t * kvHeads + g
  let g = th % kvh;
  let tab = pu(5u) + g * 4u;
  let slot = ldu(tab + 2u) + th / kvh;
  let src = th * d + 2u * c;
  let at = (slot % pt) * hw + c;
  let kw = pu(0u) + src;
  let vw = pu(1u) + src;
  stu(ldu(ldu(tab) / 4u + slot / pt) / 4u + at, to_half(ldu(kw)) | (to_half(ldu(kw + 1u)) << 16u));
  stu(ldu(ldu(tab + 1u) / 4u + slot / pt) / 4u + at, to_half(ldu(vw)) | (to_half(ldu(vw + 1u)) << 16u));
}

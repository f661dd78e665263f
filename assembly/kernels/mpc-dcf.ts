// Distributed comparison function (DCF) kernels: Gen and Eval of Boyle et al., "Function Secret Sharing
// for Mixed-Mode and Fixed-Point Secure Computation" (EUROCRYPT 2021), Figure 1, for n keys of `bits`-bit
// inputs with outputs in Z_2^64 (wasm i64 wraps). The PRG G is one ChaCha20 block keyed by the 128-bit
// seed with the 128-bit-key constants (key words repeated); its 16 output words are laid out
// s_L 0..3, v_L 4..5, t_L bit of 6, s_R 7..10, v_R 11..12, t_R bit of 13. The TypeScript twin is
// src/mpc/dcf.ts. Key layout per element e: seed 4 u32 at e*16; per level i (at = e*bits + i) seed
// correction 4 u32 at at*16, value correction i64 at at*8, control corrections u8 at at (bit 0 left,
// bit 1 right); final correction i64 at e*8. `scratch` is 128 bytes the caller owns.

@inline function sAt(side: i32): usize {
  return side ? 28 : 0
}
@inline function vAt(side: i32): usize {
  return side ? 44 : 16
}
@inline function tAt(side: i32): usize {
  return side ? 52 : 24
}

/** one ChaCha20 block (20 rounds, counter and nonce zero) keyed by (k0..k3, k0..k3) into out[0..16) */
function chachaTau(k0: u32, k1: u32, k2: u32, k3: u32, out: usize): void {
  const c0: u32 = 0x61707865, c1: u32 = 0x3120646e, c2: u32 = 0x79622d36, c3: u32 = 0x6b206574
  let x0 = c0, x1 = c1, x2 = c2, x3 = c3, x4 = k0, x5 = k1, x6 = k2, x7 = k3
  let x8 = k0, x9 = k1, x10 = k2, x11 = k3, x12: u32 = 0, x13: u32 = 0, x14: u32 = 0, x15: u32 = 0
  for (let r = 0; r < 10; r++) {
    x0 += x4; x12 = rotl<u32>(x12 ^ x0, 16); x8 += x12; x4 = rotl<u32>(x4 ^ x8, 12)
    x0 += x4; x12 = rotl<u32>(x12 ^ x0, 8); x8 += x12; x4 = rotl<u32>(x4 ^ x8, 7)
    x1 += x5; x13 = rotl<u32>(x13 ^ x1, 16); x9 += x13; x5 = rotl<u32>(x5 ^ x9, 12)
    x1 += x5; x13 = rotl<u32>(x13 ^ x1, 8); x9 += x13; x5 = rotl<u32>(x5 ^ x9, 7)
    x2 += x6; x14 = rotl<u32>(x14 ^ x2, 16); x10 += x14; x6 = rotl<u32>(x6 ^ x10, 12)
    x2 += x6; x14 = rotl<u32>(x14 ^ x2, 8); x10 += x14; x6 = rotl<u32>(x6 ^ x10, 7)
    x3 += x7; x15 = rotl<u32>(x15 ^ x3, 16); x11 += x15; x7 = rotl<u32>(x7 ^ x11, 12)
    x3 += x7; x15 = rotl<u32>(x15 ^ x3, 8); x11 += x15; x7 = rotl<u32>(x7 ^ x11, 7)
    x0 += x5; x15 = rotl<u32>(x15 ^ x0, 16); x10 += x15; x5 = rotl<u32>(x5 ^ x10, 12)
    x0 += x5; x15 = rotl<u32>(x15 ^ x0, 8); x10 += x15; x5 = rotl<u32>(x5 ^ x10, 7)
    x1 += x6; x12 = rotl<u32>(x12 ^ x1, 16); x11 += x12; x6 = rotl<u32>(x6 ^ x11, 12)
    x1 += x6; x12 = rotl<u32>(x12 ^ x1, 8); x11 += x12; x6 = rotl<u32>(x6 ^ x11, 7)
    x2 += x7; x13 = rotl<u32>(x13 ^ x2, 16); x8 += x13; x7 = rotl<u32>(x7 ^ x8, 12)
    x2 += x7; x13 = rotl<u32>(x13 ^ x2, 8); x8 += x13; x7 = rotl<u32>(x7 ^ x8, 7)
    x3 += x4; x14 = rotl<u32>(x14 ^ x3, 16); x9 += x14; x4 = rotl<u32>(x4 ^ x9, 12)
    x3 += x4; x14 = rotl<u32>(x14 ^ x3, 8); x9 += x14; x4 = rotl<u32>(x4 ^ x9, 7)
  }
  store<u32>(out, x0 + c0); store<u32>(out, x1 + c1, 4); store<u32>(out, x2 + c2, 8); store<u32>(out, x3 + c3, 12)
  store<u32>(out, x4 + k0, 16); store<u32>(out, x5 + k1, 20); store<u32>(out, x6 + k2, 24); store<u32>(out, x7 + k3, 28)
  store<u32>(out, x8 + k0, 32); store<u32>(out, x9 + k1, 36); store<u32>(out, x10 + k2, 40); store<u32>(out, x11 + k3, 44)
  store<u32>(out, x12, 48); store<u32>(out, x13, 52); store<u32>(out, x14, 56); store<u32>(out, x15, 60)
}

/**
 * Gen for n DCFs f_e(x) = beta_e [x < alpha_e]: from the two root seeds per element (seed0, seed1, the
 * dealer's randomness) writes the correction words shared by both keys.
 */
export function mpcDcfGen(alpha: usize, beta: usize, seed0: usize, seed1: usize, seedCw: usize, valueCw: usize, controlCw: usize, finalCw: usize, n: i32, bits: i32, scratch: usize): void {
  const o0 = scratch
  const o1 = scratch + 64
  for (let e = 0; e < n; e++) {
    const eo = <usize>e << 4
    let a0 = load<u32>(seed0 + eo), a1 = load<u32>(seed0 + eo, 4), a2 = load<u32>(seed0 + eo, 8), a3 = load<u32>(seed0 + eo, 12)
    let b0 = load<u32>(seed1 + eo), b1 = load<u32>(seed1 + eo, 4), b2 = load<u32>(seed1 + eo, 8), b3 = load<u32>(seed1 + eo, 12)
    let t0: u32 = 0
    let t1: u32 = 1
    let va: i64 = 0
    const a = load<u64>(alpha + (<usize>e << 3))
    const bt = load<i64>(beta + (<usize>e << 3))
    for (let i = 0; i < bits; i++) {
      const ai = <i32>((a >> <u64>(bits - 1 - i)) & 1)
      chachaTau(a0, a1, a2, a3, o0)
      chachaTau(b0, b1, b2, b3, o1)
      const keep = ai
      const lose = 1 - ai
      const sl = sAt(lose)
      const c0 = load<u32>(o0 + sl) ^ load<u32>(o1 + sl)
      const c1 = load<u32>(o0 + sl + 4) ^ load<u32>(o1 + sl + 4)
      const c2 = load<u32>(o0 + sl + 8) ^ load<u32>(o1 + sl + 8)
      const c3 = load<u32>(o0 + sl + 12) ^ load<u32>(o1 + sl + 12)
      let vcw = load<i64>(o1 + vAt(lose)) - load<i64>(o0 + vAt(lose)) - va
      if (lose == 0) vcw += bt
      if (t1) vcw = -vcw
      va = va - load<i64>(o1 + vAt(keep)) + load<i64>(o0 + vAt(keep)) + (t1 ? -vcw : vcw)
      const tl = (load<u32>(o0 + tAt(0)) & 1) ^ (load<u32>(o1 + tAt(0)) & 1) ^ <u32>ai ^ 1
      const tr = (load<u32>(o0 + tAt(1)) & 1) ^ (load<u32>(o1 + tAt(1)) & 1) ^ <u32>ai
      const tk = keep ? tr : tl
      const at = <usize>e * <usize>bits + <usize>i
      store<u32>(seedCw + (at << 4), c0)
      store<u32>(seedCw + (at << 4), c1, 4)
      store<u32>(seedCw + (at << 4), c2, 8)
      store<u32>(seedCw + (at << 4), c3, 12)
      store<i64>(valueCw + (at << 3), vcw)
      store<u8>(controlCw + at, <u8>(tl | (tr << 1)))
      const sk = sAt(keep)
      const m0: u32 = t0 ? 0xffffffff : 0
      const m1: u32 = t1 ? 0xffffffff : 0
      a0 = load<u32>(o0 + sk) ^ (c0 & m0); a1 = load<u32>(o0 + sk + 4) ^ (c1 & m0)
      a2 = load<u32>(o0 + sk + 8) ^ (c2 & m0); a3 = load<u32>(o0 + sk + 12) ^ (c3 & m0)
      b0 = load<u32>(o1 + sk) ^ (c0 & m1); b1 = load<u32>(o1 + sk + 4) ^ (c1 & m1)
      b2 = load<u32>(o1 + sk + 8) ^ (c2 & m1); b3 = load<u32>(o1 + sk + 12) ^ (c3 & m1)
      const nt0 = (load<u32>(o0 + tAt(keep)) & 1) ^ (t0 & tk)
      t1 = (load<u32>(o1 + tAt(keep)) & 1) ^ (t1 & tk)
      t0 = nt0
    }
    const s0 = (<i64>a1 << 32) | <i64>a0
    const s1 = (<i64>b1 << 32) | <i64>b0
    const fin = s1 - s0 - va
    store<i64>(finalCw + (<usize>e << 3), t1 ? -fin : fin)
  }
}

/** Eval: out_e = this party's additive share of f_e(x_e) (the low `bits` bits of x_e, public). */
export function mpcDcfEval(seed: usize, seedCw: usize, valueCw: usize, controlCw: usize, finalCw: usize, x: usize, out: usize, n: i32, bits: i32, party: i32, scratch: usize): void {
  for (let e = 0; e < n; e++) {
    const eo = <usize>e << 4
    let s0 = load<u32>(seed + eo), s1 = load<u32>(seed + eo, 4), s2 = load<u32>(seed + eo, 8), s3 = load<u32>(seed + eo, 12)
    let t = <u32>party
    let v: i64 = 0
    const xe = load<u64>(x + (<usize>e << 3))
    for (let i = 0; i < bits; i++) {
      chachaTau(s0, s1, s2, s3, scratch)
      const xi = <i32>((xe >> <u64>(bits - 1 - i)) & 1)
      const so = scratch + sAt(xi)
      s0 = load<u32>(so); s1 = load<u32>(so, 4); s2 = load<u32>(so, 8); s3 = load<u32>(so, 12)
      let tn = load<u32>(scratch + tAt(xi)) & 1
      let vv = load<i64>(scratch + vAt(xi))
      if (t) {
        const at = <usize>e * <usize>bits + <usize>i
        const c = seedCw + (at << 4)
        s0 ^= load<u32>(c); s1 ^= load<u32>(c, 4); s2 ^= load<u32>(c, 8); s3 ^= load<u32>(c, 12)
        tn ^= (<u32>load<u8>(controlCw + at) >> <u32>xi) & 1
        vv += load<i64>(valueCw + (at << 3))
      }
      v += vv
      t = tn
    }
    let last = (<i64>s1 << 32) | <i64>s0
    if (t) last += load<i64>(finalCw + (<usize>e << 3))
    v += last
    store<i64>(out + (<usize>e << 3), party ? -v : v)
  }
}

// GQA key scoring over a page table of float32 or float16 keys (kv.*.wgsl): out[h*n + i] = scale * (q[h] . k_i) for h < qHeads, i < n.
// One quad per key row (quad.wgsl: coalesced 16-byte loads, the query staged in workgroup memory), 64
// keys per workgroup pass, workgroups striding over the keys; heads in groups of QG = 4.
// args: 0 q, 1 qHeads, 2 d, 3 table, 4 pageTokens, 5 n, 6 scale (f32), 7 out (word indices), 8 groups,
// 14 skip flag (prelude.wgsl)
// (the workgroup count: loops around barriers must be uniform, and WGSL's uniformity analysis counts
// the workgroup id of the In struct as non-uniform, so trip counts come from the arguments)
@compute @workgroup_size(256)
fn score_keys(I: In) {
  score_quads(I, false);
}

// score_keys with quad_dot_wide: a d = 128 row's eight loads a lane in flight at once (the variant
// quad-wide of src/backend/webgpu/score-variants.ts)
@compute @workgroup_size(256)
fn score_keys_wide(I: In) {
  score_quads(I, true);
}

fn score_quads(I: In, wide: bool) {
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
        if (i < n) {
          let row = kv_row(table, pt, i, d);
          let len = min(QD, d - c0);
          if (wide) { acc += quad_dot_wide(row, c0, len, j); } else { acc += quad_dot(row, c0, len, j); }
        }
      }
      let s = quad_sum4(acc, I.lid);
      if (i < n && h0 + j < qh) { st(out + (h0 + j) * n + i, scale * s); }
    }
  }
}

// Key scoring (the same outputs as score_keys above) with G lanes a key row and R rows a lane
// group at once: the variants bench/webgpu.ts weighs against the quad kernel (src/backend/webgpu/
// score-variants.ts names them). Lane l of a group reads the row's 16-byte columns l, l + G, ..., so
// with G = 32 (a warp) one load instruction reads a whole d = 128 row: 512 contiguous bytes, four full
// 128-byte lines. Every lane issues its R rows' loads before any multiply (R x MQ loads in flight, no
// branch between them), and holds its first MQ columns of the query in registers (one mat4x4 a column:
// the 4 heads of 4 channels), so those columns cost no workgroup-memory reads.
// args: as score_keys (0 q, 1 qHeads, 2 d, 3 table, 4 pageTokens, 5 n, 6 scale, 7 out, 8 groups, 14 skip)
override G: u32 = 32u; // lanes a row: a power of two, 4..subgroup size (group_sum4 in reduce.*.wgsl)
override R: u32 = 4u; // rows a group takes at once, <= RMAX
override MQ: u32 = 1u; // query columns a lane keeps in registers, <= MQMAX and G * MQ <= QD / 4
const RMAX: u32 = 8u;
const MQMAX: u32 = 2u;

@compute @workgroup_size(256)
fn score_keys_rows(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let q = pu(0u); let qh = pu(1u); let d = pu(2u); let table = pu(3u);
  let pt = pu(4u); let n = pu(5u); let scale = pf(6u); let out = pu(7u);
  let lane = I.lid & (G - 1u);
  let per = (WG / G) * R; // rows a workgroup pass
  let first = wg_linear(I.wg, I.nwg) * per + (I.lid / G) * R;
  let stride = pu(8u) * per;
  let iters = (n + stride - 1u) / stride;
  let zero = vec4<f32>(0.0);
  var qm: array<mat4x4<f32>, MQMAX>;
  var rows: array<u32, RMAX>;
  var acc: array<vec4<f32>, RMAX>;
  var k: array<vec4<f32>, RMAX * MQMAX>;
  for (var h0 = 0u; h0 < qh; h0 += QG) {
    for (var it = 0u; it < iters; it++) {
      let i0 = first + it * stride;
      for (var r = 0u; r < R; r++) { acc[r] = zero; }
      for (var c0 = 0u; c0 < d; c0 += QD) {
        let len = min(QD, d - c0);
        // the staged query serves every key of the workgroup unless d needs more than one stage
        if (d > QD || it == 0u) {
          stage_q(q, qh, h0, d, c0, I.lid);
          for (var m = 0u; m < MQ; m++) {
            let c = 4u * (lane + G * m);
            qm[m] = mat4x4<f32>(qs[c], qs[c + 1u], qs[c + 2u], qs[c + 3u]);
          }
        }
        // rows past n read the last row (a valid address) and are never stored
        var aligned = (len & 3u) == 0u;
        for (var r = 0u; r < R; r++) {
          rows[r] = page_row(table, pt, min(i0 + r, n - 1u), d) + c0;
          aligned = aligned && (rows[r] & 3u) == 0u;
        }
        if (aligned) {
          // every load first (columns past len read column len - 4 and are masked), then the math
          for (var r = 0u; r < R; r++) {
            for (var m = 0u; m < MQ; m++) { k[r * MQMAX + m] = ld4(rows[r] + min(4u * (lane + G * m), len - 4u)); }
          }
          for (var r = 0u; r < R; r++) {
            for (var m = 0u; m < MQ; m++) { acc[r] += select(zero, qm[m] * k[r * MQMAX + m], 4u * (lane + G * m) < len); }
            // channels past the registers' G * MQ * 4 (d > 128 at G = 32) from workgroup memory
            for (var c = 4u * (lane + G * MQ); c < len; c += 4u * G) { acc[r] += dot_q4(c, ld4(rows[r] + c)); }
          }
        } else {
          for (var r = 0u; r < R; r++) {
            for (var c = lane; c < len; c += G) { acc[r] += qs[c] * ld(rows[r] + c); }
          }
        }
      }
      for (var r = 0u; r < R; r++) {
        let s = group_sum4(acc[r], I.lid, G);
        let i = i0 + r;
        if (i < n && lane < 4u && h0 + lane < qh) { st(out + (h0 + lane) * n + i, scale * s); }
      }
    }
  }
}

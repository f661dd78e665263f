// Causal attention of a prefill chunk over the paged float32 or float16 cache (kv.*.wgsl), FlashAttention-2 style (Dao 2023,
// sec. 3.1: the query tile is the outer loop, keys and values stream past it with an online softmax,
// one normalisation at the end). One 128-thread workgroup takes FQ = 32 query rows of one query head
// h (KV head h / group) and walks the keys FK = 64 at a time through the page table:
//   scores S = Q K^T: a 32 x 64 block, each thread 4 rows x 4 keys in registers, channels staged
//     FC = 16 at a time in workgroup memory (query and key slices channel-major), as in gemm.wgsl;
//   softmax: 4 threads a row (a quarter of the keys each) update the row's running max and sum;
//   output O += P V: each thread 4 rows x (channels 4 tx..+3 and 64 + 4 tx..+3), V rows read straight
//     from the pages (a warp reads whole rows; the 8 row groups share them through the cache).
// Row t of the chunk sees the first min(n_g, first_g + 1 + t) keys of head g (tabs as in runtime.wgsl),
// as ModelKernels.attendCausal with visible0 = first + 1. d <= 128; workgroup memory 15 KiB, under
// WebGPU's guaranteed 16 KiB.
// A short chunk has few query tiles, too few workgroups to fill a GPU: the keys are then split too
// (FA-2's sequence parallelism, as flash-decoding splits a decode step), each split writing its
// unnormalised output with the rows' max and sum to scratch, and attend_causal_merge combines the
// splits by log-sum-exp.
// args: 0 q, 1 qStride (floats a row), 2 hq, 3 group, 4 d, 5 tabs, 6 pageTokens, 7 scale (f32),
//       8 out, 9 outStride, 10 T, 11 splits, 12 splitKeys (keys a split, a multiple of FK),
//       13 scratch (splits > 1: [splits][T][hq] rows of d + 2 words rounded up to 4: output, max, sum)
const FQ: u32 = 32u;
const FK: u32 = 64u;
const FC: u32 = 16u;
var<workgroup> fq: array<vec4<f32>, 128>; // [FC][FQ / 4] query slice
var<workgroup> fk: array<vec4<f32>, 256>; // [FC][FK / 4] key slice
var<workgroup> fp: array<vec4<f32>, 512>; // [FK][FQ / 4] scores, then weights (key-major)
var<workgroup> fv: array<u32, 64>; // word of each key's V row
var<workgroup> fstat: array<f32, 128>; // [4][FQ] per quarter of the keys: the rows' max, then sum
var<workgroup> fcorr: array<f32, 32>; // per row: this tile's rescale of the output, at the end 1 / l
var<workgroup> fkeys: vec2<u32>; // this workgroup's keys [begin, end)

// words c..c+3 of a float32 query row that may be absent (a row past T): zeros
fn flash_q(row: u32, present: bool, c: u32, d: u32) -> vec4<f32> {
  if (!present) { return vec4<f32>(0.0); }
  return f32x4(row, c, d);
}

// elements c..c+3 of a K row (kv.*.wgsl) that may be absent (a key past the tile's end): zeros
fn flash_k(row: u32, present: bool, c: u32, d: u32) -> vec4<f32> {
  if (!present) { return vec4<f32>(0.0); }
  return kv4(row, c, d);
}

@compute @workgroup_size(128)
fn attend_causal_flash(I: In) {
  setup(I);
  let hq = pu(2u); let d = pu(4u); let pt = pu(6u); let scale = pf(7u); let T = pu(10u);
  let lid = I.lid;
  let g = wg_linear(I.wg, I.nwg);
  let h = g % hq;
  let qtiles = (T + FQ - 1u) / FQ;
  let t0 = ((g / hq) % qtiles) * FQ;
  let split = g / (hq * qtiles);
  let splits = pu(11u);
  // a 2-D grid (over 65535 workgroups) has workgroups past the last: they read and write nothing
  let inside = split < max(splits, 1u);
  let tab = pu(5u) + (h / pu(3u)) * 4u;
  let kt = ldu(tab) / 4u;
  let vt = ldu(tab + 1u) / 4u;
  let first = ldu(tab + 2u);
  let n = ldu(tab + 3u);
  // the tile's last row sees the most keys; a storage read (and the workgroup id) is not uniform to
  // WGSL, so the loop bounds come back through workgroup memory
  if (lid == 0u) {
    let seen = min(n, first + min(T, t0 + FQ));
    let sk = pu(12u);
    fkeys = select(vec2<u32>(0u, seen), vec2<u32>(min(seen, split * sk), min(seen, (split + 1u) * sk)), splits > 1u);
    if (!inside) { fkeys = vec2<u32>(0u); }
  }
  let keys = workgroupUniformLoad(&fkeys);
  let nk = keys.y;

  // scores: rows 4 ty + i, keys 4 tx + j
  let tx = lid % 16u;
  let ty = lid / 16u;
  var vis: vec4<u32>;
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + 4u * ty + i;
    vis[i] = select(0u, min(n, first + 1u + t), t < T);
  }
  // staging: query row qr (a warp covers the 32 rows of one channel quad), key kr (two quads)
  let qr = lid % FQ;
  let qc = (lid / FQ) * 4u;
  let qrow = pu(0u) + (t0 + qr) * pu(1u) + h * d;
  let kr = lid % FK;
  let kc = (lid / FK) * 4u;
  // softmax: row sr, keys sq * 16 .. + 15; the 4 threads of a row keep the same running max and sum
  let sr = lid % FQ;
  let sq = lid / FQ;
  var m_run = neg_inf();
  var l_run = 0.0;
  var acc: array<vec4<f32>, 8>; // rows 4 ty + i: channels 4 tx.. in acc[i], 64 + 4 tx.. in acc[4 + i]
  for (var i = 0u; i < 8u; i++) { acc[i] = vec4<f32>(0.0); }

  for (var s0 = keys.x; s0 < nk; s0 += FK) {
    let live = min(FK, nk - s0);
    var krow = 0u;
    if (kr < live) { krow = kv_row(kt, pt, s0 + kr, d); }
    var s: array<vec4<f32>, 4>; // s[i][j]: row 4 ty + i, key 4 tx + j
    for (var i = 0u; i < 4u; i++) { s[i] = vec4<f32>(0.0); }
    var a = flash_q(qrow, t0 + qr < T, qc, d);
    var b0 = flash_k(krow, kr < live, kc, d);
    var b1 = flash_k(krow, kr < live, kc + 8u, d);
    for (var c0 = 0u; c0 < d; c0 += FC) {
      for (var j = 0u; j < 4u; j++) {
        fq[(qc + j) * 8u + qr / 4u][qr % 4u] = a[j];
        fk[(kc + j) * 16u + kr / 4u][kr % 4u] = b0[j];
        fk[(kc + 8u + j) * 16u + kr / 4u][kr % 4u] = b1[j];
      }
      workgroupBarrier();
      // the next stage's loads in flight while this one is multiplied (as in gemm.wgsl)
      a = flash_q(qrow, t0 + qr < T, c0 + FC + qc, d);
      b0 = flash_k(krow, kr < live, c0 + FC + kc, d);
      b1 = flash_k(krow, kr < live, c0 + FC + kc + 8u, d);
      for (var c = 0u; c < FC; c++) { outer4(&s, fq[c * 8u + ty], fk[c * 16u + tx]); }
      workgroupBarrier();
    }
    for (var j = 0u; j < 4u; j++) {
      let key = s0 + 4u * tx + j;
      var col: vec4<f32>;
      for (var i = 0u; i < 4u; i++) { col[i] = select(neg_inf(), s[i][j] * scale, key < vis[i]); }
      fp[(4u * tx + j) * 8u + ty] = col;
    }
    // fv and fp are rewritten only here, after the score stages' barriers: the last tile's readers are done
    if (lid < live) { fv[lid] = kv_row(vt, pt, s0 + lid, d); }
    workgroupBarrier();

    // online softmax of the tile, 4 threads a row
    var mx = neg_inf();
    for (var i = 0u; i < 16u; i++) { mx = max(mx, fp[(16u * sq + i) * 8u + sr / 4u][sr % 4u]); }
    fstat[sq * FQ + sr] = mx;
    workgroupBarrier();
    let m_new = max(m_run, max(max(fstat[sr], fstat[FQ + sr]), max(fstat[2u * FQ + sr], fstat[3u * FQ + sr])));
    // a row that sees no key yet (or a row past T) keeps zero weights and no NaN: exp(-inf - 0) = 0
    let base = select(m_new, 0.0, m_new == neg_inf());
    var sum = 0.0;
    for (var i = 0u; i < 16u; i++) {
      let at = (16u * sq + i) * 8u + sr / 4u;
      let e = exp(fp[at][sr % 4u] - base);
      fp[at][sr % 4u] = e;
      sum += e;
    }
    workgroupBarrier(); // every thread has read the maxima
    fstat[sq * FQ + sr] = sum;
    workgroupBarrier();
    let corr = exp(m_run - base);
    l_run = l_run * corr + fstat[sr] + fstat[FQ + sr] + fstat[2u * FQ + sr] + fstat[3u * FQ + sr];
    m_run = m_new;
    if (sq == 0u) { fcorr[sr] = corr; }
    workgroupBarrier();

    // O = O * corr + P V
    let cr = vec4<f32>(fcorr[4u * ty], fcorr[4u * ty + 1u], fcorr[4u * ty + 2u], fcorr[4u * ty + 3u]);
    for (var i = 0u; i < 4u; i++) {
      acc[i] *= cr[i];
      acc[4u + i] *= cr[i];
    }
    for (var j = 0u; j < live; j++) {
      let p = fp[j * 8u + ty];
      let v0 = kv4(fv[j], 4u * tx, d);
      for (var i = 0u; i < 4u; i++) { acc[i] += p[i] * v0; }
      if (d > 64u) {
        let v1 = kv4(fv[j], 64u + 4u * tx, d);
        for (var i = 0u; i < 4u; i++) { acc[4u + i] += p[i] * v1; }
      }
    }
  }
  workgroupBarrier(); // the last tile's readers of fcorr are done
  let part = splits > 1u;
  let row = (d + 5u) & ~3u;
  if (sq == 0u) {
    fcorr[sr] = select(select(0.0, 1.0 / l_run, l_run > 0.0), 1.0, part);
    if (part && inside && t0 + sr < T) {
      let at = pu(13u) + ((split * T + t0 + sr) * hq + h) * row + d;
      st(at, m_run);
      st(at + 1u, l_run);
    }
  }
  workgroupBarrier();
  for (var i = 0u; i < 4u; i++) {
    let t = t0 + 4u * ty + i;
    if (!inside || t >= T) { continue; }
    var o = pu(8u) + t * pu(9u) + h * d;
    if (part) { o = pu(13u) + ((split * T + t) * hq + h) * row; }
    let inv = fcorr[4u * ty + i];
    for (var half = 0u; half < 2u; half++) {
      let c = 64u * half + 4u * tx;
      let v = acc[4u * half + i] * inv;
      if (((o | d) & 3u) == 0u && c < d) {
        st4(o + c, v);
      } else {
        for (var k = 0u; k < 4u; k++) { if (c + k < d) { st(o + c + k, v[k]); } }
      }
    }
  }
}

// Merges the key splits of attend_causal_flash: out = sum_s e_s o_s / sum_s e_s l_s, e_s = exp(m_s - M),
// M the largest m_s (a split that saw none of a row's keys has m = -inf, l = 0 and adds nothing). One
// thread an output channel. args: 0 out, 1 outStride, 2 hq, 3 d, 4 T, 5 scratch, 6 splits
@compute @workgroup_size(256)
fn attend_causal_merge(I: In) {
  setup(I);
  let hq = pu(2u); let d = pu(3u); let T = pu(4u); let splits = pu(6u);
  let i = wg_linear(I.wg, I.nwg) * WG + I.lid;
  if (i >= T * hq * d) { return; }
  let c = i % d;
  let th = i / d; // t * hq + h
  let row = (d + 5u) & ~3u;
  let stride = T * hq * row; // one split's rows
  let base = pu(5u) + th * row;
  var m = neg_inf();
  for (var s = 0u; s < splits; s++) { m = max(m, ld(base + s * stride + d)); }
  var o = 0.0;
  var l = 0.0;
  for (var s = 0u; s < splits; s++) {
    let at = base + s * stride;
    let e = exp(ld(at + d) - m);
    o += e * ld(at + c);
    l += e * ld(at + d + 1u);
  }
  st(pu(0u) + (th / hq) * pu(1u) + (th % hq) * d + c, o / l);
}

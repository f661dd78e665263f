// Exact top-k of long rows over many workgroups: radix select on the order-preserving keys of the float
// bits with the passes of the wasm kernel (assembly/kernels/topk.ts: 11 + 11 + 10 bits), so the chosen
// set, the tie rule (ties at the k-th key go to the lower indices) and the NaN policy (NaN below -inf,
// -0 == +0) are the wasm core's. One dispatch per pass, each over all workgroups of every row:
//   top_k_hist (rounds 0, 1, 2): each workgroup recomputes the bucket chosen by the earlier rounds from
//     their histograms, counts its block's candidates in workgroup memory and adds them to the row's
//     global histogram (atomics in `radix`, the kernels' own scratch buffer);
//   top_k_count: the k-th key T and how many keys equal to T are taken; per block, keys > T and == T;
//   top_k_emit: each block writes its chosen indices at the offset the blocks before it give, threads
//     in contiguous runs, so the output is ascending; it zeroes the histograms for the next call.
// Rows are independent (a row per vote unit); workgroup w serves row w / blocks, block w % blocks.
// args: 0 x (word of row 0), 1 n, 2 k (1..n), 3 row stride (words), 4 round, 5 blocks per row,
//       6 elements per thread, 7 out (word of row 0), 8 out row stride, 9 added to each index,
//       14 skip flag (prelude.wgsl)
// radix, per row: [0, 2048) round 0, [2048, 4096) round 1, [4096, 5120) round 2 histograms,
//   [5120, 5122) T and ties taken, [5128, 5128 + 2 * blocks) per block keys > T and == T.

@group(0) @binding(2) var<storage, read_write> radix: array<atomic<u32>>;

const RADIX_ROW: u32 = 5632u; // 5128 + 2 x 252 blocks, rounded up (src/backend/webgpu/kernels.ts: RADIX_ROW_WORDS)

var<workgroup> local_hist: array<atomic<u32>, 2048>;
var<workgroup> scan: array<u32, 256>;
var<workgroup> picked: vec2<u32>;

// Exclusive prefix sum of v over lid (Hillis-Steele in workgroup memory); every lane must call it.
fn scan_excl(v: u32, lid: u32) -> u32 {
  workgroupBarrier();
  scan[lid] = v;
  workgroupBarrier();
  for (var s = 1u; s < WG; s <<= 1u) {
    let add = select(0u, scan[lid - s], lid >= s);
    workgroupBarrier();
    scan[lid] += add;
    workgroupBarrier();
  }
  return scan[lid] - v;
}

// The bucket of histogram h (bins words of radix) holding the need-th largest key, and how many of the
// need fall inside it (the wasm kernel's pickBucket). Lane l sums the l-th chunk from the top.
fn pick(h: u32, bins: u32, need: u32, lid: u32) -> vec2<u32> {
  let per = bins / WG;
  let c = WG - 1u - lid;
  var s = 0u;
  for (var j = 0u; j < per; j++) { s += atomicLoad(&radix[h + c * per + j]); }
  let above = scan_excl(s, lid);
  if (above < need && above + s >= need) {
    var a = above;
    var b = c * per + per - 1u;
    loop {
      let x = atomicLoad(&radix[h + b]);
      if (a + x >= need || b == c * per) { break; }
      a += x;
      b -= 1u;
    }
    picked = vec2<u32>(b, need - a);
  }
  return workgroupUniformLoad(&picked);
}

// Where a workgroup works: its row and block, the row's floats and radix words, and its contiguous run
// of E elements per lane (lane l's run starts at block * E * WG + l * E).
struct Place { row: u32, block: u32, blocks: u32, E: u32, hb: u32, x: u32, n: u32, lo: u32, hi: u32 }

fn place(I: In) -> Place {
  let blocks = pu(5u);
  let w = wg_linear(I.wg, I.nwg);
  let row = w / blocks;
  let block = w % blocks;
  let E = pu(6u);
  let n = pu(1u);
  let lo = min(n, block * E * WG + I.lid * E);
  return Place(row, block, blocks, E, row * RADIX_ROW, pu(0u) + row * pu(3u), n, lo, min(n, lo + E));
}

// (key prefix, keys still needed inside it) after `rounds` rounds of the row whose radix words start at hb.
fn radix_prefix(hb: u32, k: u32, rounds: u32, lid: u32) -> vec2<u32> {
  var pre = vec2<u32>(0u, k);
  if (rounds > 0u) { pre = pick(hb, 2048u, pre.y, lid); }
  if (rounds > 1u) { let p = pick(hb + 2048u, 2048u, pre.y, lid); pre = vec2<u32>((pre.x << 11u) | p.x, p.y); }
  if (rounds > 2u) { let p = pick(hb + 4096u, 1024u, pre.y, lid); pre = vec2<u32>((pre.x << 10u) | p.x, p.y); }
  return pre;
}

@compute @workgroup_size(256)
fn top_k_hist(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let lid = I.lid;
  let P = place(I);
  let r = pu(4u);
  let pre = radix_prefix(P.hb, pu(2u), r, lid);
  for (var b = lid; b < 2048u; b += WG) { atomicStore(&local_hist[b], 0u); }
  workgroupBarrier();
  let shift = select(select(0u, 10u, r == 1u), 21u, r == 0u);
  let bins = select(2048u, 1024u, r == 2u);
  // lanes stride through the block here (coalesced reads): the histogram does not care about order
  let start = P.block * P.E * WG;
  for (var j = 0u; j < P.E; j++) {
    let i = start + j * WG + lid;
    if (i < P.n) {
      let key = radix_key(ldu(P.x + i));
      // rounds 1 and 2 count only the keys in the buckets chosen so far
      if (r == 0u || (key >> (shift + select(11u, 10u, r == 2u))) == pre.x) { atomicAdd(&local_hist[(key >> shift) & (bins - 1u)], 1u); }
    }
  }
  workgroupBarrier();
  let gh = P.hb + 2048u * r;
  for (var b = lid; b < bins; b += WG) {
    let c = atomicLoad(&local_hist[b]);
    if (c != 0u) { atomicAdd(&radix[gh + b], c); }
  }
}

@compute @workgroup_size(256)
fn top_k_count(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let lid = I.lid;
  let P = place(I);
  let pre = radix_prefix(P.hb, pu(2u), 3u, lid);
  let c = count_run(P.x, P.lo, P.hi, pre.x);
  // totals: the last lane's exclusive sum plus its own
  let g = scan_excl(c.x, lid) + c.x;
  let e = scan_excl(c.y, lid) + c.y;
  if (lid == WG - 1u) {
    atomicStore(&radix[P.hb + 5128u + 2u * P.block], g);
    atomicStore(&radix[P.hb + 5129u + 2u * P.block], e);
  }
  if (lid == 0u && P.block == 0u) {
    atomicStore(&radix[P.hb + 5120u], pre.x);
    atomicStore(&radix[P.hb + 5121u], pre.y);
  }
}

@compute @workgroup_size(256)
fn top_k_emit(I: In) {
  setup(I);
  if (skipped(I.lid)) { return; }
  let lid = I.lid;
  let P = place(I);
  let t = atomicLoad(&radix[P.hb + 5120u]);
  let ties = atomicLoad(&radix[P.hb + 5121u]);
  // keys > T and == T in the blocks before this one
  var bg = 0u;
  var be = 0u;
  for (var b = lid; b < P.block; b += WG) {
    bg += atomicLoad(&radix[P.hb + 5128u + 2u * b]);
    be += atomicLoad(&radix[P.hb + 5129u + 2u * b]);
  }
  let gBefore = scan_excl(bg, WG - 1u - lid); // lane 0 ends up with the whole sum
  let eBefore = scan_excl(be, WG - 1u - lid);
  if (lid == 0u) { picked = vec2<u32>(gBefore + bg, eBefore + be); }
  let before = workgroupUniformLoad(&picked);
  let c = count_run(P.x, P.lo, P.hi, t);
  var seen = before.y + scan_excl(c.y, lid); // keys == T before this lane's run
  var o = before.x + scan_excl(c.x, lid) + min(ties, seen);
  let out = pu(7u) + P.row * pu(8u);
  let add = pu(9u);
  for (var i = P.lo; i < P.hi; i++) {
    let key = radix_key(ldu(P.x + i));
    var chosen = key > t;
    if (key == t) { chosen = seen < ties; seen += 1u; }
    if (chosen) { stu(out + o, i + add); o += 1u; }
  }
  // the histograms back to zero for the next call (nothing in this pass reads them)
  for (var i = P.block * WG + lid; i < 5120u; i += P.blocks * WG) { atomicStore(&radix[P.hb + i], 0u); }
}

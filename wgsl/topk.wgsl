// Exact top-k by radix select on order-preserving keys of the float bits, one 256-thread workgroup:
// four 8-bit passes find the k-th largest key T and how many of the keys equal to T are taken; then each
// thread writes the chosen indices of its contiguous block at its prefix offset, so the output is
// ascending and ties at T go to the lower indices. -0 == +0; NaN ranks below -Infinity.
// args: 0 x, 1 n, 2 k, 3 outIdx (i32)

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> prefix: u32;
var<workgroup> k_left: u32;
var<workgroup> n_gt: array<u32, 256>;
var<workgroup> n_eq: array<u32, 256>;
var<workgroup> base: array<u32, 256>;
var<workgroup> ties_before: array<u32, 256>;

@compute @workgroup_size(256)
fn top_k(I: In) {
  setup(I);
  let x = pu(0u); let n = pu(1u); let k = pu(2u); let out = pu(3u);
  let lid = I.lid;
  if (lid == 0u) { prefix = 0u; k_left = k; }
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    let mask = select(0xffffffffu << (shift + 8u), 0u, round == 0u);
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    let p = prefix;
    for (var i = lid; i < n; i += WG) {
      let key = radix_key(ldu(x + i));
      if ((key & mask) == p) { atomicAdd(&hist[(key >> shift) & 255u], 1u); }
    }
    workgroupBarrier();
    if (lid == 0u) {
      var above = 0u;
      var b = 255u;
      loop {
        let c = atomicLoad(&hist[b]);
        if (above + c >= k_left || b == 0u) { break; }
        above += c;
        b -= 1u;
      }
      k_left -= above;
      prefix = p | (b << shift);
    }
    workgroupBarrier();
  }
  let t = prefix;
  let take_ties = k_left;
  let per = (n + WG - 1u) / WG;
  let lo = min(n, lid * per);
  let hi = min(n, lo + per);
  let c = count_run(x, lo, hi, t);
  n_gt[lid] = c.x;
  n_eq[lid] = c.y;
  workgroupBarrier();
  if (lid == 0u) {
    var o = 0u;
    var ties = 0u;
    for (var b = 0u; b < WG; b++) {
      base[b] = o;
      ties_before[b] = ties;
      o += n_gt[b] + min(n_eq[b], take_ties - min(take_ties, ties));
      ties += n_eq[b];
    }
  }
  workgroupBarrier();
  var o = base[lid];
  var ties = ties_before[lid];
  for (var i = lo; i < hi; i++) {
    let key = radix_key(ldu(x + i));
    var chosen = key > t;
    if (key == t) { chosen = ties < take_ties; ties += 1u; }
    if (chosen) { stu(out + o, i); o += 1u; }
  }
}

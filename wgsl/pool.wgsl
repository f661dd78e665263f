// Centered 1-D pooling, odd kernel, stride 1, same length; one thread per position.
// Max pads with -inf; avg is torch avg_pool1d(padding=kernel>>1, count_include_pad=True).
// args: 0 x, 1 n, 2 kernel, 3 out, 4 kind (0 max, 1 avg)
@compute @workgroup_size(256)
fn pool_1d(I: In) {
  setup(I);
  let x = pu(0u); let n = i32(pu(1u)); let kernel = i32(pu(2u)); let out = pu(3u); let avg = pu(4u) == 1u;
  let i = i32(wg_linear(I.wg, I.nwg) * WG + I.lid);
  if (i >= n) { return; }
  let half = kernel / 2;
  var m = neg_inf();
  var s = 0.0;
  for (var j = max(0, i - half); j <= min(n - 1, i + half); j++) {
    let v = ld(x + u32(j));
    m = max(m, v);
    s += v;
  }
  st(out + u32(i), select(m, s / f32(kernel), avg));
}

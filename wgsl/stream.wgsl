// The bandwidth yardstick: a plain streaming read of n words, summed per thread and written once per
// thread so the reads cannot be dropped. args: 0 x, 1 n, 2 out (one word per thread)
@compute @workgroup_size(256)
fn stream_sum(I: In) {
  setup(I);
  let x = pu(0u); let n = pu(1u);
  let threads = I.nwg.x * I.nwg.y * WG;
  let g = wg_linear(I.wg, I.nwg) * WG + I.lid;
  var a = 0.0;
  for (var i = g; i < n; i += threads) { a += ld(x + i); }
  st(pu(2u) + g, a);
}

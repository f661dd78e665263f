// The bandwidth yardstick: a plain streaming read of n words (x 16-byte aligned), summed per thread and
// written once per thread so the reads cannot be dropped. 16-byte loads, four in flight per thread
// (one load per thread in flight cannot cover DRAM latency), workgroups striding over the buffer.
// args: 0 x, 1 n, 2 out (one word per thread)
@compute @workgroup_size(256)
fn stream_sum(I: In) {
  setup(I);
  let x = pu(0u); let n = pu(1u);
  let t = I.nwg.x * I.nwg.y * WG;
  let g = wg_linear(I.wg, I.nwg) * WG + I.lid;
  let n4 = n / 4u;
  var a = vec4<f32>(0.0);
  var b = vec4<f32>(0.0);
  var c = vec4<f32>(0.0);
  var e = vec4<f32>(0.0);
  var i = g;
  for (; i + 3u * t < n4; i += 4u * t) {
    a += ld4(x + 4u * i);
    b += ld4(x + 4u * (i + t));
    c += ld4(x + 4u * (i + 2u * t));
    e += ld4(x + 4u * (i + 3u * t));
  }
  for (; i < n4; i += t) { a += ld4(x + 4u * i); }
  var s = dot(a + b + c + e, vec4<f32>(1.0));
  for (var w = 4u * n4 + g; w < n; w += t) { s += ld(x + w); }
  st(pu(2u) + g, s);
}

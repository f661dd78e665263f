// 256-thread workgroup reductions: within a subgroup by subgroupAdd/subgroupMax, then across the
// 256 / subgroup_size partial results. 1-D workgroups are split into subgroups of consecutive
// local_invocation_index on every Vulkan, Metal and D3D12 driver Dawn runs on.
enable subgroups;

struct In {
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(subgroup_invocation_id) sid: u32,
  @builtin(subgroup_size) ssz: u32,
}
var<private> g_sid: u32;
var<private> g_ssz: u32;
fn setup(i: In) { g_sid = i.sid; g_ssz = i.ssz; }

var<workgroup> red: array<f32, 256>;
var<workgroup> total: f32;

fn wg_sum(v: f32, lid: u32) -> f32 {
  let s = subgroupAdd(v);
  if (g_sid == 0u) { red[lid / g_ssz] = s; }
  workgroupBarrier();
  if (lid == 0u) {
    var t = 0.0;
    for (var i = 0u; i < (WG + g_ssz - 1u) / g_ssz; i++) { t += red[i]; }
    total = t;
  }
  return workgroupUniformLoad(&total);
}

fn wg_max(v: f32, lid: u32) -> f32 {
  let s = subgroupMax(v);
  if (g_sid == 0u) { red[lid / g_ssz] = s; }
  workgroupBarrier();
  if (lid == 0u) {
    var t = neg_inf();
    for (var i = 0u; i < (WG + g_ssz - 1u) / g_ssz; i++) { t = max(t, red[i]); }
    total = t;
  }
  return workgroupUniformLoad(&total);
}

// Sums a vec4 over each quad (4 consecutive lanes); lane j of the quad gets component j. A butterfly
// that trades halves (lanes 0-1 keep x, y and lanes 2-3 keep z, w, then one component each): 3
// shuffles instead of 8. Subgroups are at least 4 lanes and split at multiples of 4 (see above).
fn quad_sum4(v: vec4<f32>, lid: u32) -> f32 {
  let hi = (lid & 2u) != 0u;
  let send = select(v.zw, v.xy, hi);
  let s = select(v.xy, v.zw, hi) + vec2<f32>(subgroupShuffleXor(send.x, 2u), subgroupShuffleXor(send.y, 2u));
  let odd = (lid & 1u) != 0u;
  return select(s.x, s.y, odd) + subgroupShuffleXor(select(s.y, s.x, odd), 1u);
}

// Sums a vec4 over each group of g consecutive lanes (g a power of two, 4 <= g <= the subgroup size);
// every lane of the group gets component lid & 3: quad_sum4, then a butterfly across the quads.
fn group_sum4(v: vec4<f32>, lid: u32, g: u32) -> f32 {
  var s = quad_sum4(v, lid);
  for (var o = 4u; o < g; o <<= 1u) { s += subgroupShuffleXor(s, o); }
  return s;
}

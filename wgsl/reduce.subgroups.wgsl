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

// 256-thread workgroup reductions through workgroup memory (adapters without subgroups).
struct In {
  @builtin(local_invocation_index) lid: u32,
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
}
fn setup(i: In) {}

var<workgroup> red: array<f32, 256>;
// Results come back through workgroupUniformLoad, so callers may branch on them around barriers.

fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red[0]);
}

fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&red[0]);
}

// Sums a vec4 over each quad (4 consecutive lanes); lane j of the quad gets component j. Every lane of
// the workgroup must call it (it holds barriers). 4 rows of 257: a warp's reads fall in distinct banks.
var<workgroup> quad_red: array<f32, 1028>;

fn quad_sum4(v: vec4<f32>, lid: u32) -> f32 {
  workgroupBarrier(); // the previous call's readers are done
  for (var c = 0u; c < 4u; c++) { quad_red[c * 257u + lid] = v[c]; }
  workgroupBarrier();
  let at = (lid & 3u) * 257u + (lid & ~3u);
  return quad_red[at] + quad_red[at + 1u] + quad_red[at + 2u] + quad_red[at + 3u];
}

// Sums a vec4 over each group of g consecutive lanes (g a power of two, 4..256); every lane of the
// group gets component lid & 3. Every lane of the workgroup must call it (it holds barriers).
fn group_sum4(v: vec4<f32>, lid: u32, g: u32) -> f32 {
  workgroupBarrier(); // the previous call's readers are done
  for (var c = 0u; c < 4u; c++) { quad_red[c * 257u + lid] = v[c]; }
  workgroupBarrier();
  let at = (lid & 3u) * 257u + (lid & ~(g - 1u));
  var s = 0.0;
  for (var t = 0u; t < g; t++) { s += quad_red[at + t]; }
  return s;
}

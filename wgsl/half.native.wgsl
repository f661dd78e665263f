// Widening two packed halves with shader-f16 (kernels.ts puts `enable f16;` first in the module): the
// word reinterpreted as vec2<f16>, then converted to f32 (exact: every half is an f32).
fn half2(w: u32) -> vec2<f32> { return vec2<f32>(bitcast<vec2<f16>>(w)); }

// Widening two packed halves without shader-f16: core WGSL's unpack2x16float (low half first).
fn half2(w: u32) -> vec2<f32> { return unpack2x16float(w); }

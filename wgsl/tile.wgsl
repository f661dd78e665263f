// The register-blocked step shared by the tiled kernels (gemm.wgsl, flash.wgsl), pasted before them
// (INCLUDES in src/backend/webgpu/kernels.ts): a thread's 4 x 4 block gains the outer product of 4
// values of one operand's column and 4 of the other's, 16 multiply-adds for two 16-byte reads of
// workgroup memory.
fn outer4(acc: ptr<function, array<vec4<f32>, 4>>, a: vec4<f32>, b: vec4<f32>) {
  (*acc)[0] += a.x * b;
  (*acc)[1] += a.y * b;
  (*acc)[2] += a.z * b;
  (*acc)[3] += a.w * b;
}

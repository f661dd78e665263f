/**
 * Kernels of the Llama runtime (matrix-vector and matrix products, RMSNorm, RoPE, SwiGLU ...), pointer
 * based like KernelBackend. Owned by the runtime (src/model); every backend implements them.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ModelKernels {}

// The compute core's exports: kernels over pointers and sizes into the memory TypeScript owns.
export { heapBase, copyBytes } from './kernels/memory'
export { matmul, fmaPeak } from './model/matmul'
export { rmsnorm } from './model/norm'
export { rope } from './model/rope'
export { swiglu, addInPlace } from './model/activation'
export { attendCausal, attentionMass } from './model/attention'

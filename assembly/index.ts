// The compute core's exports: kernels over pointers and sizes into the memory TypeScript owns.
export { heapBase, copyBytes } from './kernels/memory'

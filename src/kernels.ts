// kvkit/kernels: the compute core for those who build their own attention or policies: the arena (raw
// pointers into WebAssembly memory), the kernels behind every backend, and cache attention on pointers.
// Browser-safe like the root entry.
export { Heap, HeapError, F32Buf, I32Buf } from './backend/heap.js'
export type { Backend, KernelBackend, BackendName } from './backend/backend.js'
export { Ops, ShapeError } from './backend/ops.js'
export { contiguousView, type OwnedHeadView } from './backend/views.js'
export type { HeadView, HeadSegment } from './cache/types.js'
export { referenceKernels, type Kernels } from './backend/reference/kernels.js'
export { wasmKernels } from './backend/wasm/kernels.js'
export type { KvkitExports } from './backend/wasm/load.js'
export { attendCache, type CacheAttention, type Rotate } from './cache/attention.js'
export { createBackend, BackendOptionsError, type BackendOptions, type CreatedBackend } from './backend/index.js'

import type { Heap } from '../heap.js'
import type { ModelKernels } from '../model-kernels.js'

/** Plain TypeScript twins of the runtime's kernels (filled by the runtime issue). */
export function referenceModelKernels(_heap: Heap): ModelKernels {
  return {}
}

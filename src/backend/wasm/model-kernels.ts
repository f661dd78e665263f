import type { Heap } from '../heap.js'
import type { ModelKernels } from '../model-kernels.js'

/** The runtime's kernels bound to the wasm exports (filled by the runtime issue). */
export function wasmModelKernels(_exports: WebAssembly.Exports, _heap: Heap): ModelKernels {
  return {}
}

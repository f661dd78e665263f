/** First byte past the module's own static data: the TypeScript arena starts above it. */
export function heapBase(): usize {
  return __heap_base
}

/** memory.copy: the bandwidth yardstick the benchmarks compare kernels with. */
export function copyBytes(dst: usize, src: usize, n: usize): void {
  memory.copy(dst, src, n)
}

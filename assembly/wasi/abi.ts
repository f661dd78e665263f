// The host side of the C-style ABI (docs/abi.md): memory the host allocates and frees, and the version.
// The allocator is AssemblyScript's TLSF (runtime "minimal"): O(1) alloc and free, 16-byte aligned.

/** ABI version: major << 16 | minor. A minor step adds exports; a major step changes or removes one. */
export const ABI_VERSION: u32 = (1 << 16) | 15

export function abiVersion(): u32 {
  return ABI_VERSION
}

// Just under TLSF's largest block (1 GiB less its 4-byte header, after rounding): a larger request gets 0
// here instead of reaching TLSF's abort, which would end the host's WASI process.
const MAX_ALLOC: usize = (1 << 30) - 16

/**
 * size bytes, 16-byte aligned, contents undefined; 0 for size 0 or above MAX_ALLOC. When the memory
 * cannot grow any further the call traps (unreachable) before the allocator changes any state.
 */
export function alloc(size: usize): usize {
  if (size == 0 || size > MAX_ALLOC) return 0
  return heap.alloc(size)
}

/** Returns a block from alloc to the allocator; free(0) does nothing. */
export function free(ptr: usize): void {
  if (ptr != 0) heap.free(ptr)
}

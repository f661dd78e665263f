// Types of wasi-driver.mjs (plain JavaScript, so that Bun and Deno run it as it is) for the type-checked tests.

/** The ABI's functions (docs/abi.md) by name, plus an allocator and the current memory. */
export interface Core {
  alloc(bytes: number): number
  free(ptr: number): void
  buffer(): ArrayBufferLike
  [fn: string]: unknown
}

/** A WASI core: build/kvkit.wasi.wasm's exports, every ABI function callable by name. */
export type WasiCore = Core & Record<string, (...args: number[]) => number>

/** Instantiates build/kvkit.wasi.wasm as a WASI reactor in this runtime, as docs/abi.md describes. */
export function loadWasiCore(path: string): Promise<WasiCore>

/** Runs the grid on a core; returns case name -> the bytes the kernel wrote, in order. */
export function runGrid(core: Core): Map<string, Uint8Array>

// The compute core for WASI hosts (Rust, Go, Python, C, C++ ... embedding a WebAssembly engine): every
// export of the JavaScript build, from the same sources, plus what a host needs when no JavaScript Heap
// owns the memory: an allocator over the module's own exported memory and the ABI version.
// The ABI is documented in docs/abi.md; test/wasi-abi.test.ts checks that the two agree.
export * from './index'
export { alloc, free, abiVersion } from './wasi/abi'

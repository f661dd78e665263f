import { BACKEND_NAMES, type Backend, type BackendName } from './backend.js'
import { Heap } from './heap.js'
import { referenceKernels } from './reference/kernels.js'
import { referenceModelKernels } from './reference/model-kernels.js'
import { referencePackedKernels } from './reference/packed-kernels.js'
import { referencePackKernels } from './reference/pack-kernels.js'
import { wasmKernels } from './wasm/kernels.js'
import { wasmModelKernels } from './wasm/model-kernels.js'
import { loadWasm, supportsSimd, type WasmBuild, type WasmLoadOptions } from './wasm/load.js'
import { createWebGpuBackend, hasHardwareAdapter, type GpuDeviceOptions, type WebGpuBackend } from './webgpu/index.js'
import { ThreadPool } from './threads/pool.js'
import { MIN_PART_MACS, threadedModelKernels } from './threads/kernels.js'
import { threadedScoring } from './threads/scoring.js'
import { threadedCompaction } from './threads/compaction.js'
import { MAX_THREADS, sharedMemorySupported, webWorkerSpawner, type SpawnWorker } from './threads/spawn.js'
import { optionNamesProblem, shownValue } from '../model/errors.js'
import { BackendOptionsError } from './errors.js'

export { BackendOptionsError }

export interface BackendOptions extends WasmLoadOptions {
  /** WebGPU device options (subgroups, shader-f16, power preference) for 'webgpu'. */
  gpu?: GpuDeviceOptions
  /**
   * Threads the wasm kernels run on, 1 to 256 (default 1): with more, the arena is a shared WebAssembly.Memory
   * and `threads - 1` workers split the matrix products and attention (results identical to one
   * thread). Falls back to one thread where shared memory or workers are unavailable (a page that is
   * not cross-origin isolated, Node without `spawnWorker`); `backend.threads` says what runs.
   */
  threads?: number
  /**
   * Multiply-adds each thread's share of a kernel call must reach (default MIN_PART_MACS, 2^15): a call
   * of fewer than twice this runs on the calling thread, a larger one on at most macs / minPartMacs
   * threads, so a decode step's small matmuls do not pay for waking more workers than their work is
   * worth; the KV store's compaction counts a byte moved as half a multiply-add (threads/compaction.ts).
   * A tuning knob for benchmarks (bench/threads.ts --min-part-macs); results do not depend on it.
   */
  minPartMacs?: number
  /** starts a worker (default: the global Worker; kvkit/node passes Node's worker threads) */
  spawnWorker?: SpawnWorker
  /**
   * When the workers fail to start (a bundle that left out the worker script, a blocked worker
   * source), run on one thread instead of rejecting: loadModel's behaviour when `threads` is its default.
   */
  threadsOptional?: boolean
}

/** every option createBackend takes; the record's type makes a new BackendOptions field fail to compile until listed */
const BACKEND_OPTION_SET: Record<keyof BackendOptions, true> = {
  wasm: true, relaxedWasm: true, threadsWasm: true, relaxedThreadsWasm: true, relaxed: true, heap: true,
  gpu: true, threads: true, minPartMacs: true, spawnWorker: true, threadsOptional: true,
}

/**
 * A backend as createBackend returns it; `build` says which wasm build runs (absent for reference),
 * `threads` how many threads its kernels use, `close` stops its worker threads (if any).
 */
export type CreatedBackend = Backend & { readonly build?: WasmBuild }

/**
 * Which compute core runs: the wasm build ('wasm-relaxed-simd' fuses multiply-adds, so its results can
 * differ from 'wasm-simd' within float32 rounding) or the TypeScript twins. Recorded with every eval
 * result, because the two wasm builds may pick different tokens on a near tie.
 */
export type KernelBuild = 'wasm-simd' | 'wasm-relaxed-simd' | 'reference' | 'webgpu'

export function kernelBuild(backend: Backend & { readonly build?: WasmBuild }): KernelBuild {
  if (backend.name !== 'wasm') return backend.name
  return backend.build === 'relaxed' ? 'wasm-relaxed-simd' : 'wasm-simd'
}

/**
 * Makes a backend: 'wasm' (the SIMD core; relaxed SIMD where it pays), 'reference' (plain TypeScript
 * twins, slow but obviously right) or 'auto' (wasm where the runtime has WebAssembly SIMD, else
 * reference). Async because the wasm module is compiled. Pass `heap` to share an arena: a wasm and a
 * reference backend on one heap see the same buffers, which is how the tests compare them.
 * 'webgpu' adds the WGSL kernels on a GPU device (src/backend/webgpu/index.ts); it throws
 * WebGpuUnavailableError where no adapter exists. 'auto' picks it when the runtime has a hardware adapter
 * (a software rasteriser such as lavapipe or SwiftShader is slower than the wasm core, so it does not
 * count) and no shared heap or worker threads were asked for, and falls back to wasm when the device
 * cannot be had.
 * @throws BackendOptionsError (a RangeError) naming the value, before any work: an unknown name or
 *   option, a `threads` that is no integer in [1, 256], a `minPartMacs` that is no positive integer
 */
export async function createBackend(name: 'webgpu', opts?: BackendOptions): Promise<WebGpuBackend>
export async function createBackend(name?: BackendName, opts?: BackendOptions): Promise<CreatedBackend>
export async function createBackend(name: BackendName = 'auto', opts: BackendOptions = {}): Promise<CreatedBackend> {
  // a misspelt option (thread: 4) ran on one thread, silently; null options were a TypeError
  const namesProblem = optionNamesProblem(opts, BACKEND_OPTION_SET)
  if (namesProblem !== undefined) throw new BackendOptionsError(`createBackend: ${namesProblem}`)
  // refused with the options (it was a plain Error, thrown last, once every known name was passed over)
  if (!(BACKEND_NAMES as readonly unknown[]).includes(name)) throw new BackendOptionsError(`createBackend: unknown backend ${shownValue(name)}; expected 'wasm', 'reference', 'webgpu' or 'auto'`)
  // checked for every backend, before the GPU probe: they were checked on the wasm path only, so a bad
  // count reached the probe's comparison (threads: '2' > 1) and the reference backend took any value
  const threads = opts.threads ?? 1
  if (!(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS)) throw new BackendOptionsError(`createBackend: threads must be an integer in [1, ${MAX_THREADS}], got ${shownValue(opts.threads)}`)
  const minPartMacs = opts.minPartMacs ?? MIN_PART_MACS
  if (!(Number.isInteger(minPartMacs) && minPartMacs >= 1)) throw new BackendOptionsError(`createBackend: minPartMacs must be a positive integer, got ${shownValue(opts.minPartMacs)}`)
  if (name === 'auto' && !opts.heap && !(threads > 1 && !opts.threadsOptional) && (await hasHardwareAdapter())) {
    try {
      return await createWebGpuBackend(opts)
    } catch {
      // an adapter that gives no device (busy, lost, refused limits): the wasm core runs instead
    }
  }
  if (name === 'reference') {
    const heap = opts.heap ?? new Heap()
    return { name: 'reference', heap, ...referenceKernels(heap), ...referencePackedKernels(heap), ...referencePackKernels(heap), ...referenceModelKernels(heap) }
  }
  if (name === 'wasm' || (name === 'auto' && supportsSimd())) {
    const spawn = opts.spawnWorker ?? webWorkerSpawner()
    const wantShared = threads > 1 && spawn !== undefined && sharedMemorySupported()
    const { exports, heap, build, module, shared } = await loadWasm(opts, wantShared)
    const e = exports as unknown as WebAssembly.Exports
    const single = { name: 'wasm' as const, heap, build, threads: 1, ...wasmKernels(exports, heap), ...wasmModelKernels(e, heap) }
    if (!shared || threads === 1 || !spawn) return single
    let pool: ThreadPool
    try {
      pool = await ThreadPool.start(module, heap, threads - 1, spawn, e)
    } catch (err) {
      if (opts.threadsOptional) return single
      throw err
    }
    // after close, threads is 1: every kernel then runs on the calling thread (ThreadPool.threads)
    return {
      ...single, ...threadedModelKernels(single, pool, minPartMacs), ...threadedScoring(single, pool, minPartMacs), ...threadedCompaction(single, pool, minPartMacs),
      get threads() {
        return pool.threads
      },
      close: () => pool.close(),
    }
  }
  if (name === 'auto') return createBackend('reference', opts)
  return createWebGpuBackend(opts) // name === 'webgpu'
}

import type { Backend } from '../backend.js'
import { wasmKernels } from '../wasm/kernels.js'
import { wasmModelKernels } from '../wasm/model-kernels.js'
import { loadWasm, type WasmBuild, type WasmLoadOptions } from '../wasm/load.js'
import { openGpuDevice, type GpuDevice, type GpuDeviceOptions } from './device.js'
import { WebGpuKernels } from './kernels.js'

export { hasHardwareAdapter, isSoftwareAdapter, openGpuDevice, WebGpuUnavailableError, type GpuDevice, type GpuDeviceOptions } from './device.js'
export { GpuArenaCapacityError, GpuArenaMirror } from './mirror.js'
export { attendScratchWords, attendSplit, ATTEND_SPLIT, flashScratchWords, flashSplit, FLASH_MAX_D, WebGpuKernels, type ChunkKernels, type DecodeKernels } from './kernels.js'
export { GpuBufferPool } from './pool.js'

/**
 * The WebGPU backend: the WGSL kernels on a GPU device (`gpu`, over GPU arena buffers with the same
 * byte-pointer layout as the wasm heap) beside the wasm core, which serves the synchronous Backend
 * calls on the CPU heap (policies' scoring, the store's compaction). `loadModel` runs the Llama
 * forward pass on the GPU with it (src/model/gpu-forward.ts). `destroy()` (or `close()`, which a model
 * that made its backend calls at dispose) frees the GPU buffers and the device, after which the process
 * exits on its own; calls after it throw WebGpuUnavailableError ('device-lost').
 */
export type WebGpuBackend = Backend & {
  readonly name: 'webgpu'
  readonly build: WasmBuild
  readonly gpu: WebGpuKernels
  readonly device: GpuDevice
  destroy(): void
  close(): void
}

/**
 * Opens a device (navigator.gpu in browsers and Deno, the `webgpu` package in Node) and compiles every
 * kernel. Throws WebGpuUnavailableError when there is no WebGPU or no adapter; nothing is left open then.
 */
export async function createWebGpuBackend(opts: WasmLoadOptions & { gpu?: GpuDeviceOptions } = {}): Promise<WebGpuBackend> {
  const device = await openGpuDevice(opts.gpu)
  let gpu: WebGpuKernels
  try {
    gpu = await WebGpuKernels.create(device)
  } catch (e) {
    device.destroy()
    throw e
  }
  try {
    const { exports, heap, build } = await loadWasm(opts)
    const destroy = () => {
      gpu.destroy()
      device.destroy()
    }
    return {
      ...wasmKernels(exports, heap),
      ...wasmModelKernels(exports as unknown as WebAssembly.Exports, heap),
      name: 'webgpu',
      heap,
      build,
      gpu,
      device,
      destroy,
      close: destroy,
    }
  } catch (e) {
    gpu.destroy()
    device.destroy()
    throw e
  }
}

import type { Heap } from '../src/backend/heap.js'
import { openGpuDevice, WebGpuUnavailableError, type GpuDevice } from '../src/backend/webgpu/device.js'
import type { WebGpuKernels } from '../src/backend/webgpu/kernels.js'

/**
 * The test device: lavapipe on CI (.ci/run installs it and sets KVKIT_REQUIRE_WEBGPU=1, so a missing
 * adapter fails there), skipped elsewhere when the machine has no adapter.
 */
export async function testGpu(): Promise<GpuDevice | null> {
  try {
    return await openGpuDevice()
  } catch (e) {
    if (e instanceof WebGpuUnavailableError && process.env.KVKIT_REQUIRE_WEBGPU !== '1') return null
    throw e
  }
}

/**
 * Runs GPU kernels on a copy of the whole wasm heap, so the same byte pointers and page tables the CPU
 * kernels saw address the same data on the GPU, and returns the requested [ptr, bytes] ranges.
 */
export async function onGpu(k: WebGpuKernels, heap: Heap, outs: [number, number][], encode: () => void): Promise<ArrayBuffer[]> {
  const bytes = heap.memory.buffer.byteLength
  const arena = k.pool.acquire(bytes, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
  k.arena = arena
  k.write(0, heap.U8)
  encode()
  const got: ArrayBuffer[] = []
  for (const [ptr, n] of outs) got.push(await k.read(ptr, n))
  k.pool.release(arena)
  return got
}

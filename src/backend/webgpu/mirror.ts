import type { Heap } from '../heap.js'
import type { WebGpuKernels } from './kernels.js'

/** The heap outgrew what one GPU storage binding can address (the adapter's maxStorageBufferBindingSize). */
export class GpuArenaCapacityError extends RangeError {
  override name = 'GpuArenaCapacityError'
}

/**
 * The GPU twin of a wasm heap: one storage buffer at least as large as the heap's memory, so a byte
 * pointer means the same bytes on both sides (weights, forward buffers, the cache's pages and page
 * tables). Nothing is kept in step automatically: `push` copies heap ranges up, `pull` copies GPU
 * ranges down into the heap; the runtime (src/model/gpu-forward.ts) knows which side is newer.
 * The buffer grows with the heap (a new buffer, the old contents copied on the GPU), by half again each
 * time so that a decode loop seldom grows it; it cannot outgrow one storage binding (GpuArenaCapacityError).
 */
export class GpuArenaMirror {
  private buffer: GPUBuffer | null = null
  /** buffers made so far (the first and each growth): what a test watches in a decode loop */
  buffersCreated = 0

  constructor(
    readonly kernels: WebGpuKernels,
    readonly heap: Heap,
  ) {}

  /** bytes the mirror holds on the GPU */
  get bytes(): number {
    return this.buffer?.size ?? 0
  }

  /** makes the GPU buffer cover the heap's memory as it is now, and the kernels' arena */
  ensure(): void {
    const need = this.heap.memory.buffer.byteLength
    if (this.buffer && this.buffer.size >= need) return
    const device = this.kernels.gpu.device
    const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize)
    if (need > limit) {
      throw new GpuArenaCapacityError(`WebGPU: the arena needs ${need} bytes, more than this adapter binds at once (${limit} bytes); use the wasm backend or a smaller context`)
    }
    const size = Math.min(limit, Math.ceil((this.buffer ? Math.max(need, this.buffer.size * 1.5) : need) / 65536) * 65536)
    const grown = device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST })
    this.buffersCreated++
    const old = this.buffer
    if (old) {
      this.kernels.submit()
      const enc = device.createCommandEncoder()
      enc.copyBufferToBuffer(old, 0, grown, 0, old.size)
      device.queue.submit([enc.finish()])
    }
    this.buffer = grown
    this.kernels.setArena(grown)
    old?.destroy()
  }

  /** copies heap bytes [ptr, ptr + bytes) to the GPU (queued after what is encoded so far) */
  push(ptr: number, bytes: number): void {
    if (bytes <= 0) return
    this.ensure()
    const end = ptr + Math.ceil(bytes / 4) * 4
    this.kernels.write(ptr, this.heap.U8.subarray(ptr, end))
  }

  /** copies GPU bytes of each [ptr, bytes] range into the same heap range (one readback for all) */
  async pull(ranges: readonly (readonly [number, number])[]): Promise<void> {
    if (!ranges.length) return
    this.ensure()
    const got = await this.kernels.readRanges(ranges)
    const U8 = this.heap.U8
    let at = 0
    for (const [ptr, bytes] of ranges) {
      U8.set(got.subarray(at, at + bytes), ptr)
      at += Math.ceil(bytes / 4) * 4
    }
  }

  destroy(): void {
    this.buffer?.destroy()
    this.buffer = null
  }
}

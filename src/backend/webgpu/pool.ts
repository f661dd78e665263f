/**
 * GPU buffers reused by size class (powers of two from 256 bytes), so steady-state work creates none:
 * `acquire` returns a free buffer of the class at least as large, `release` gives it back. Buffers of
 * different usages are pooled apart. `destroy` frees them all.
 */
export class GpuBufferPool {
  private readonly free = new Map<string, GPUBuffer[]>()
  private readonly all = new Set<GPUBuffer>()
  /** Buffers created so far: what a test watches to see that a loop creates none. */
  created = 0

  constructor(private readonly device: GPUDevice) {}

  static sizeClass(bytes: number): number {
    return Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(1, bytes))))
  }

  acquire(bytes: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const size = GpuBufferPool.sizeClass(bytes)
    const key = `${usage}:${size}`
    const list = this.free.get(key)
    const hit = list?.pop()
    if (hit) return hit
    const buf = this.device.createBuffer({ size, usage })
    this.created++
    this.all.add(buf)
    return buf
  }

  release(buf: GPUBuffer): void {
    if (!this.all.has(buf)) throw new Error('GpuBufferPool.release: buffer is not from this pool')
    const key = `${buf.usage}:${buf.size}`
    const list = this.free.get(key) ?? []
    if (list.includes(buf)) throw new Error('GpuBufferPool.release: buffer released twice')
    list.push(buf)
    this.free.set(key, list)
  }

  destroy(): void {
    for (const b of this.all) b.destroy()
    this.all.clear()
    this.free.clear()
  }
}

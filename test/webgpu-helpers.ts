import { afterAll, beforeAll } from 'vitest'
import type { CreatedBackend } from '../src/backend/index.js'
import type { Heap } from '../src/backend/heap.js'
import { openGpuDevice, WebGpuUnavailableError, type GpuDevice } from '../src/backend/webgpu/device.js'
import { flashScratchWords, WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import type { ModelKernels } from '../src/backend/model-kernels.js'
import { expectClose, wasmAndReference } from './kernels-helpers.js'

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

/** one KV head of a chunk's causal attention: first cached rows, n after the chunk, its tables on the GPU and for the reference */
export interface CausalHead { first: number; n: number; kTable: number; vTable: number; refK: number; refV: number }

/**
 * attendCausal (or attendCausalF16) of a chunk of T rows three ways (FlashAttention-2 tiles, the same with
 * the keys split 64 a workgroup and merged, the one-row-a-workgroup kernel) against the reference
 * ModelKernels.attendCausal per KV head (visible0 = first_g + 1).
 */
export async function expectCausalThreeWays(
  K: WebGpuKernels, heap: Heap, ref: Pick<ModelKernels, 'attendCausal'>, f16: boolean,
  T: number, hq: number, group: number, d: number, pt: number, heads: CausalHead[], q: number,
): Promise<void> {
  const tabs = heap.i32From(heads.flatMap((h) => [h.kTable, h.vTable, h.first, h.n]))
  const outs = [0, 1, 2].map(() => heap.allocF32(T * hq * d))
  const keys = Math.max(...heads.map((h) => h.n))
  const scratch = heap.allocF32(flashScratchWords(T, hq, d, keys, 64))
  const scale = 1 / Math.sqrt(d)
  const causal = (f16 ? K.attendCausalF16 : K.attendCausal).bind(K)
  const got = await onGpu(K, heap, outs.map((o) => [o.ptr, T * hq * d * 4]), () => {
    causal(q, hq * d, hq, group, T, d, tabs.ptr, pt, scale, outs[0].ptr, hq * d)
    causal(q, hq * d, hq, group, T, d, tabs.ptr, pt, scale, outs[1].ptr, hq * d, keys, scratch.ptr, 64)
    K.chunkKernels = 'simple'
    causal(q, hq * d, hq, group, T, d, tabs.ptr, pt, scale, outs[2].ptr, hq * d)
    K.chunkKernels = 'tiled'
  })
  const want = outs[0]
  heads.forEach((h, g) => {
    const off = g * group * d * 4
    ref.attendCausal(q + off, hq * d, group, T, d, d, h.refK, h.refV, pt, h.n, h.first + 1, scale, want.ptr + off, hq * d, 0, 0)
  })
  // (d past FLASH_MAX_D takes the one-row kernel all three times)
  expectClose(new Float32Array(got[0]), want.view, 1e-4, 1e-5, 'flash attendCausal')
  expectClose(new Float32Array(got[1]), want.view, 1e-4, 1e-5, 'flash attendCausal, keys split')
  expectClose(new Float32Array(got[2]), want.view, 1e-4, 1e-5, 'simple attendCausal')
  for (const b of [tabs, scratch, ...outs]) b.free()
}

/** decode attention read back dense and gathered ([out, lse, out2, lse2]) against the reference's same four buffers */
export function expectDenseAndGathered(got: ArrayBuffer[], want: { view: Float32Array }[]): void {
  const what = ['dense out', 'dense lse', 'gathered out', 'gathered lse']
  got.forEach((g, i) => expectClose(new Float32Array(g), want[i].view, i % 2 ? 1e-5 : 1e-4, 1e-5, what[i]))
}

/**
 * A test file's GPU kernels beside the wasm backend whose heap they mirror, made in beforeAll (K only
 * with an adapter); the device is destroyed in afterAll.
 */
export function gpuBesideWasm(gpu: GpuDevice | null): { wasm: CreatedBackend; heap: Heap; K: WebGpuKernels } {
  const ctx = {} as { wasm: CreatedBackend; heap: Heap; K: WebGpuKernels }
  beforeAll(async () => {
    Object.assign(ctx, await wasmAndReference())
    if (gpu) ctx.K = await WebGpuKernels.create(gpu)
  })
  afterAll(() => gpu?.destroy())
  return ctx
}

/** Why no WebGPU device could be had: no WebGPU in this runtime, no adapter, or a device lost. */
export class WebGpuUnavailableError extends Error {
  override name = 'WebGpuUnavailableError'
  constructor(readonly reason: 'no-webgpu' | 'no-adapter' | 'device-failed' | 'device-lost', message: string) {
    super(message)
  }
}

export interface GpuDeviceOptions {
  /** Use subgroup reductions when the adapter has them (default true); false forces the shared-memory path. */
  subgroups?: boolean
  /** Ask for shader-f16 when the adapter has it (default true). */
  shaderF16?: boolean
  powerPreference?: GPUPowerPreference
}

/** A WebGPU device with what kvkit uses of it. `destroy()` releases it so the process can exit. */
export interface GpuDevice {
  readonly device: GPUDevice
  readonly subgroups: boolean
  readonly shaderF16: boolean
  /** Adapter description for reports ("vendor architecture device"), empty when the runtime hides it. */
  readonly adapterName: string
  /**
   * Whether the adapter rasterises on the CPU (SwiftShader, lavapipe, WARP; see isSoftwareAdapter):
   * the kernels then take their CPU-shaped variants where one exists (WebGpuKernels.decodeKernels).
   */
  readonly software: boolean
  /** Set once the device is lost (destroyed or a driver reset); every later call throws. */
  readonly lost: GPUDeviceLostInfo | null
  destroy(): void
}

type NodeWebGpu = { create(flags: string[]): GPU; globals: Record<string, unknown> }

/**
 * The runtime's GPU entry point: `navigator.gpu` in browsers, workers and Deno; in Node and Bun the
 * optional `webgpu` package (Dawn). The package is loaded by a computed specifier so bundlers leave the
 * browser build free of it.
 */
function gpuEntry(): Promise<GPU | null> {
  // one per process: Dawn's instance must outlive every device and adapter made from it
  entry ??= openGpuEntry()
  return entry
}
let entry: Promise<GPU | null> | undefined

async function openGpuEntry(): Promise<GPU | null> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator
  if (nav?.gpu) return nav.gpu
  const isNodeLike = typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string'
  if (!isNodeLike) return null
  const spec = 'webgpu'
  let mod: NodeWebGpu
  try {
    mod = (await import(/* @vite-ignore */ spec)) as NodeWebGpu
  } catch {
    return null
  }
  // GPUBufferUsage, GPUMapMode, ... are globals in browsers; Dawn's package hands them over separately.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v
  return mod.create([])
}

/**
 * Opens a WebGPU device with the largest storage bindings the adapter allows, subgroups and shader-f16
 * when present (and wanted). Throws WebGpuUnavailableError when this runtime has no WebGPU or no adapter.
 */
export async function openGpuDevice(opts: GpuDeviceOptions = {}): Promise<GpuDevice> {
  const gpu = await gpuEntry()
  if (!gpu) throw new WebGpuUnavailableError('no-webgpu', 'WebGPU: this runtime has no navigator.gpu and the optional "webgpu" package is not installed')
  const adapter = await gpu.requestAdapter(opts.powerPreference ? { powerPreference: opts.powerPreference } : undefined)
  if (!adapter) throw new WebGpuUnavailableError('no-adapter', 'WebGPU: no adapter (no GPU, or no Vulkan/Metal/D3D12 driver such as Mesa lavapipe)')
  const subgroups = opts.subgroups !== false && adapter.features.has('subgroups')
  const shaderF16 = opts.shaderF16 !== false && adapter.features.has('shader-f16')
  const requiredFeatures: GPUFeatureName[] = []
  if (subgroups) requiredFeatures.push('subgroups' as GPUFeatureName)
  if (shaderF16) requiredFeatures.push('shader-f16')
  const L = adapter.limits
  let device: GPUDevice
  try {
    device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
        maxBufferSize: L.maxBufferSize,
        maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
      },
    })
  } catch (e) {
    throw new WebGpuUnavailableError('device-failed', `WebGPU: requestDevice failed: ${(e as Error).message}`)
  }
  const info = (adapter as { info?: GPUAdapterInfo }).info
  const state = {
    // Dawn's instance must outlive its devices: dropped, it is garbage-collected and the process aborts
    gpu,
    device,
    subgroups,
    shaderF16,
    adapterName: info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ') : '',
    software: isSoftwareAdapter(adapter),
    lost: null as GPUDeviceLostInfo | null,
    destroy() {
      device.destroy()
    },
  }
  device.lost.then((lostInfo) => {
    state.lost = lostInfo
  })
  return state
}

/** Adapters that rasterise on the CPU (Mesa lavapipe/llvmpipe, SwiftShader, WARP): slower than the wasm core. */
const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|microsoft basic render|\bwarp\b/i

/**
 * Whether this runtime has a hardware WebGPU adapter: what backend 'auto' asks before it picks the GPU.
 * A software adapter (isFallbackAdapter, or a CPU rasteriser by name) does not count. Never throws.
 */
export async function hasHardwareAdapter(): Promise<boolean> {
  try {
    const gpu = await gpuEntry()
    const adapter = await gpu?.requestAdapter()
    return adapter ? !isSoftwareAdapter(adapter) : false
  } catch {
    return false
  }
}

/**
 * Whether an adapter rasterises on the CPU: isFallbackAdapter (Chromium's SwiftShader says so), or a CPU
 * rasteriser by name (Dawn in Node reports lavapipe as "llvmpipe").
 */
export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = (adapter as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info
  if ((adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter || info?.isFallbackAdapter) return true
  return SOFTWARE.test(info ? [info.vendor, info.architecture, info.device, info.description].join(' ') : '')
}

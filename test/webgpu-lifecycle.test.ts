import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { WebGpuKernels } from '../src/backend/webgpu/kernels.js'
import { hasHardwareAdapter } from '../src/backend/webgpu/device.js'
import { testGpu } from './webgpu-helpers.js'
import { bundleForBrowser } from './browser-bundle.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const child = fileURLToPath(new URL('./webgpu-child.mjs', import.meta.url))
const childModel = fileURLToPath(new URL('./webgpu-child-model.mjs', import.meta.url))
const gpu = await testGpu()
afterAll(() => gpu?.destroy())

function runChild(env: Record<string, string> = {}, script = child): Record<string, unknown> {
  // the timeout is the test: a process that does not exit on its own after destroy() fails here
  const out = execFileSync(process.execPath, [script], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } })
  return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop()!)
}

describe('WebGPU backend lifecycle', () => {
  it('auto takes a hardware adapter, and stays on wasm with a software one (lavapipe) or none', async () => {
    const hardware = await hasHardwareAdapter()
    if (!gpu || /llvmpipe|lavapipe|swiftshader/i.test(gpu.adapterName)) expect(hardware).toBe(false)
    // the device says the same: a CPU rasteriser, whose kernels take their CPU-shaped variants
    if (gpu) expect(gpu.software).toBe(!hardware)
    const b = await createBackend('auto')
    expect(b.name).toBe(hardware ? 'webgpu' : 'wasm')
    b.close?.()
  })

  it.skipIf(!gpu)('loadModel runs the model on webgpu; a destroyed device fails the next generate with WebGpuUnavailableError; the process exits on its own', () => {
    const r = runChild({}, childModel)
    expect(r).toMatchObject({ ok: true, backend: 'webgpu' })
    expect(r.ids).toHaveLength(2)
    expect(r.afterDestroy).toMatch(/^WebGpuUnavailableError: .*destroyed/)
  })

  it('without an adapter, createBackend("webgpu") throws WebGpuUnavailableError and the process still exits', () => {
    const r = runChild({ VK_DRIVER_FILES: '/nonexistent/icd.json', VK_ICD_FILENAMES: '/nonexistent/icd.json' })
    expect(r).toMatchObject({ ok: false, name: 'WebGpuUnavailableError' })
    expect(['no-adapter', 'device-failed']).toContain(r.reason)
  })

  it.skipIf(!gpu)('runs a kernel, destroys the device, refuses later calls, and the process exits on its own', () => {
    const r = runChild()
    const silu = (x: number) => x / (1 + Math.exp(-x))
    expect(r.ok).toBe(true)
    expect((r.got as number[]).map((v, i) => Math.abs(v - silu(i + 1) * (i + 1)) < 1e-5)).toEqual([true, true, true, true])
    expect(r.afterDestroy).toBe('WebGpuUnavailableError')
  })

  it.skipIf(!gpu)('repeated kernel calls create no GPU buffers after the first round', async () => {
    const k = await WebGpuKernels.create(gpu!)
    const arena = k.pool.acquire(1 << 16, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
    k.arena = arena
    k.write(0, new Float32Array(4096).map((_, i) => Math.sin(i)))
    const round = async () => {
      for (let i = 0; i < 300; i++) k.softmaxRows(0, 4, 256) // more dispatches than one batch's argument slots
      k.topK(4096, 1024, 10, 12288)
      return new Int32Array(await k.read(12288, 40))
    }
    const first = await round()
    const created = k.pool.created
    for (let r = 0; r < 3; r++) expect(Array.from(await round())).toEqual(Array.from(first))
    expect(k.pool.created).toBe(created)
    k.destroy()
  })

  it('the root browser bundle carries the WGSL as strings and no static import of the Node webgpu package', async () => {
    const { code, errors, nodeImports } = await bundleForBrowser('src/index.ts')
    expect(errors).toEqual([])
    expect(nodeImports).toEqual([])
    expect(code).toContain('fn score_keys(')
    expect(code).toContain('fn attend_split(')
    expect(code).not.toMatch(/from\s*["']webgpu["']/)
  })

  it('the packed WGSL module is up to date with wgsl/', () => {
    execFileSync(process.execPath, ['scripts/gen-wgsl.mjs', '--check'], { cwd: root, encoding: 'utf8' })
  })
})

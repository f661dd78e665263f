// Child process for webgpu-lifecycle.test.ts: opens the built WebGPU backend, runs one kernel, reads the
// result back, destroys the backend and prints a JSON line; the process must then exit on its own.
const { createBackend } = await import('../dist/src/backend/index.js')
try {
  const b = await createBackend('webgpu')
  const k = b.gpu
  const arena = k.pool.acquire(1024, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST)
  k.arena = arena
  k.write(0, Float32Array.of(1, 2, 3, 4))
  k.swiglu(0, 0, 64, 4)
  const got = Array.from(new Float32Array(await k.read(64, 16)))
  b.destroy()
  let afterDestroy = 'none'
  try {
    await k.read(64, 16)
  } catch (e) {
    afterDestroy = e.name
  }
  console.log(JSON.stringify({ ok: true, got, afterDestroy }))
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, reason: e.reason, message: e.message }))
}

// Child process for webgpu-lifecycle.test.ts: loads the fixture model on the WebGPU backend, generates,
// destroys the device under it (a later generate must fail with WebGpuUnavailableError, not hang),
// disposes the model and prints a JSON line; the process must then exit on its own.
const { loadModel } = await import('../dist/src/node/index.js')
try {
  const m = await loadModel('models/fixture-14m', { backend: 'webgpu', chunk: 16 })
  const r = await m.generate('The pass key is 1234. The pass key is', { maxNewTokens: 2 }).result
  m.backend.destroy()
  let afterDestroy = 'none'
  try {
    await m.generate('The pass key is', { maxNewTokens: 1 }).result
  } catch (e) {
    afterDestroy = `${e.name}: ${e.message}`
  }
  m.dispose()
  console.log(JSON.stringify({ ok: true, backend: m.backend.name, ids: r.ids, afterDestroy }))
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, message: e.message }))
}

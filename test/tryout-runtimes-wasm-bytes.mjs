// Run by tryout-runtimes-wasm-bytes.test.ts under Node, Bun and Deno: kvkit/node's loadModel with
// bytes that are not a wasm module as the plain build. Prints one JSON line.
import { loadModel } from '../dist/src/node/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const folder = new URL('../models/fixture-14m', import.meta.url).pathname
try {
  const m = await loadModel(folder, { threads: 1, backend: 'wasm', wasm: { wasm: new Uint8Array([1, 2, 3]), relaxed: false } })
  m.dispose()
  console.log(JSON.stringify({ runtime, loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ runtime, name: e.name, message: e.message }))
}

// Run by tryout-runtimes-wasm-option.test.ts under Node, Bun and Deno: kvkit/node's loadModel with bad
// `wasm` options, after one good load (as an app that loads a second model would). Prints one JSON line.
import { loadModel } from '../dist/src/node/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const folder = new URL('../models/fixture-14m', import.meta.url).pathname
const good = await loadModel(folder, { threads: 1, backend: 'wasm' })
good.dispose()
const out = { runtime }
for (const [name, wasm] of [['number', { wasm: 42 }], ['misspelt', { wsm: new Uint8Array(8) }], ['relaxed', { relaxed: 'yes' }], ['notObject', 'build/kvkit.wasm']]) {
  try {
    const m = await loadModel(folder, { threads: 1, backend: 'wasm', wasm })
    m.dispose()
    out[name] = { loaded: true }
  } catch (e) {
    out[name] = { name: e.name, message: e.message }
  }
}
console.log(JSON.stringify(out))

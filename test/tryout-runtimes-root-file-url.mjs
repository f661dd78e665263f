// Run by tryout-runtimes-root-file-url.test.ts under Node, Bun and Deno: the root entry's loadModel
// given a file: URL of a model folder that lacks an optional file. Prints one JSON line. Arg: FOLDER_URL.
import { loadModel } from '../dist/src/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const [url] = typeof Deno !== 'undefined' ? Deno.args : process.argv.slice(2)
try {
  const m = await loadModel(new URL(url), { threads: 1, backend: 'wasm' })
  m.dispose()
  console.log(JSON.stringify({ runtime, loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ runtime, name: e.name, message: e.message }))
}

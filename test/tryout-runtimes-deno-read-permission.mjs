// Run by tryout-runtimes-deno-read-permission.test.ts under Deno with read access to the package
// but not to the model folder: kvkit/node's loadModel of that folder. Prints one JSON line.
import { loadModel } from '../dist/src/node/index.js'

const [folder] = Deno.args
try {
  const m = await loadModel(folder, { threads: 1 })
  m.dispose()
  console.log(JSON.stringify({ loaded: true }))
} catch (e) {
  console.log(JSON.stringify({ name: e.name, message: e.message }))
}

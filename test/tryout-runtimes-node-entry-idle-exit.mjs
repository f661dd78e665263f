// Run by tryout-runtimes-node-entry-idle-exit.test.ts under Node, Bun and Deno: kvkit/node's loadModel
// on 2 kernel threads, one greedy generation, and the model never disposed. Prints one JSON line; the
// process must then exit on its own.
import { loadModel } from '../dist/src/node/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const model = await loadModel(new URL('../models/fixture-14m', import.meta.url).pathname, { threads: 2, backend: 'wasm' })
const { ids } = await model.generate([1, 262, 1497, 15], { maxNewTokens: 6 }).result
console.log(JSON.stringify({ runtime, threads: model.backend.threads, ids }))

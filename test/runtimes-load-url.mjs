// Runs under Node, Bun and Deno (spawned by runtimes-load.test.ts): the built root entry loads the
// fixture model by URL from the test's static server, with progress, and generates with a typed
// policy; then the same from the model folder through kvkit/node. Prints one JSON line. Args: BASE_URL INPUT_JSON ({ ids, maxNewTokens, policy }).
import { readFileSync } from 'node:fs'
import { loadModel, unionkv } from '../dist/src/index.js'
import { loadModel as loadFolder } from '../dist/src/node/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const args = typeof Deno !== 'undefined' ? Deno.args : process.argv.slice(2)
const [base, inputFile] = args
const input = JSON.parse(readFileSync(inputFile, 'utf8'))
const done = {}
const model = await loadModel(base, { backend: 'wasm', onProgress: (p) => { done[p.file] = [p.loaded, p.total] } })
const { text, stats } = await model.generate(input.ids, { maxNewTokens: input.maxNewTokens, policy: unionkv(input.policy) }).result
model.dispose()
// the same from the folder on disk (kvkit/node)
const folder = await loadFolder(new URL('../models/fixture-14m', import.meta.url).pathname, { backend: 'wasm' })
const fromFolder = (await folder.generate(input.ids, { maxNewTokens: input.maxNewTokens, policy: unionkv(input.policy) }).result).text
folder.dispose()
console.log(JSON.stringify({ runtime, text, fromFolder, backend: model.backend.name, progress: done, kv: stats.kvBytes.total, kvFull: stats.kvBytesFull }))

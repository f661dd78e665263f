import { readFileSync } from 'node:fs'
import { loadModel } from './dist/src/index.js'
const which = Deno.args[0]
const M = 'models/fixture-14m'
const files = {}
for (const f of ['config.json', 'tokenizer.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) files[f] = new Blob([readFileSync(`${M}/${f}`)])
if (which === 'abort') {
  const ac = new AbortController(); let n = 0
  try { await loadModel(files, { threads: 2, signal: ac.signal, onProgress: () => { if (++n === 3) ac.abort() } }); console.log('loaded') } catch (e) { console.log('ERR', e.name, e.message) }
}
if (which === 'badfile') {
  const f2 = { ...files, 'model-00002-of-00002.safetensors': new Blob([new Uint8Array(100)]) }
  try { await loadModel(f2, { threads: 2 }); console.log('loaded') } catch (e) { console.log('ERR', e.name, e.message.slice(0, 120)) }
}
if (which === 'notok') {
  const f2 = { ...files }; delete f2['tokenizer.json']
  try { await loadModel(f2, { threads: 2 }); console.log('loaded') } catch (e) { console.log('ERR', e.name, e.message.slice(0, 120)) }
}
console.log('end', which)

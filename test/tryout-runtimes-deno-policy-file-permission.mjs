// Run by tryout-runtimes-deno-policy-file-permission.test.ts under Deno with read access to the package
// but not to the folder of the file a policy option names. Prints one JSON line per spec.
import { createPolicy, PolicyFileError } from '../dist/src/index.js'

const [file, nosaFile] = Deno.args
const shape = { layers: 8, qHeads: 6, kvHeads: 2, headDim: 64, group: 3, hidden: 384 }
for (const spec of [`unionkv:gatesFile=${file}`, `trimkv:gatesFile=${file}`, `nosa:scoresFile=${nosaFile}`]) {
  try {
    createPolicy(spec, shape)
    console.log(JSON.stringify({ spec, created: true }))
  } catch (e) {
    console.log(JSON.stringify({ spec, name: e.name, fileError: e instanceof PolicyFileError, message: e.message }))
  }
}

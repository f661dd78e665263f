// Run by tryout-runtimes-selection-packed-keys.test.ts under Node (relaxed SIMD switched on), Bun and Deno:
// greedy TokenSelect over KIVI int2 keys on the bundled model with each wasm build, the selection scored on
// the packed codes (scorePackedKeysInt). Prints one JSON line: per build, the tokens, the integer kernel's
// calls and whether the accumulating relaxed dot ran.
import { loadModel } from '../dist/src/node/index.js'
import { createPolicy } from '../dist/src/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const text = 'The grass is green and the sky is blue. '.repeat(40) + 'The grass is green and the sky is\n'
const out = { runtime }
for (const relaxed of [false, true]) {
  const m = await loadModel(new URL('../models/fixture-14m', import.meta.url), { threads: 1, backend: 'wasm', wasm: { relaxed }, kvDtype: 'float16' })
  const b = m.backend
  let calls = 0
  const int = b.scorePackedKeysInt
  b.scorePackedKeysInt = (...a) => (calls++, int(...a))
  const r = await m.generate([0, ...m.tokenizer.encode(text)], { maxNewTokens: 8, temperature: 0, policy: createPolicy('tokenselect:tokens=64,first=1,last=4+kivi:bits=2,residual=32', m.config) }).result
  out[b.build] = { ids: r.ids, calls, dotAdd: b.packedIntDotAdd() }
  m.dispose()
}
console.log(JSON.stringify(out))

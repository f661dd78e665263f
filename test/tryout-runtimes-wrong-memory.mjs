// Run by tryout-runtimes-wrong-memory.test.ts under Bun and Deno: createBackend given a build for the
// other kind of memory (a threads build on one thread, a plain build for 2 threads on the global Worker)
// and the WASI build. Prints one JSON line: each refusal's class name and its message.
import { readFile } from 'node:fs/promises'
import { createBackend } from '../dist/src/index.js'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const compile = async (f) => WebAssembly.compile(await readFile(new URL(`../build/${f}`, import.meta.url)))
const cases = {
  threadsOnOne: { wasm: await compile('kvkit.threads.wasm'), relaxed: false },
  plainOnTwo: { threadsWasm: await compile('kvkit.wasm'), relaxed: false, threads: 2 },
  relaxedThreadsOnOne: { relaxedWasm: await compile('kvkit.relaxed-threads.wasm'), relaxed: true },
  wasi: { wasm: await compile('kvkit.wasi.wasm'), relaxed: false },
}
const out = { runtime }
for (const [name, opts] of Object.entries(cases)) {
  try {
    const b = await createBackend('wasm', opts)
    b.close?.()
    out[name] = { loaded: b.build }
  } catch (e) {
    out[name] = { name: e.constructor.name, message: e.message }
  }
}
console.log(JSON.stringify(out))

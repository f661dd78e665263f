// A WASI host in Bun or Deno, spawned by wasi-abi.test.ts (plain Node cannot load the TypeScript that the
// driver imports): loads build/kvkit.wasi.wasm through the runtime's node:wasi, runs the kernel grid
// through the ABI and prints one JSON line: the runtime and a SHA-256 of each case's output bytes.
import { createHash } from 'node:crypto'
import { loadWasiCore, runGrid } from './wasi-driver.mjs'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const core = await loadWasiCore(process.argv[2])
const digests = {}
for (const [name, bytes] of runGrid(core)) digests[name] = createHash('sha256').update(bytes).digest('hex')
console.log(JSON.stringify({ runtime, abiVersion: core.abiVersion(), digests }))

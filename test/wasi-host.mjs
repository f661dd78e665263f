// A WASI host in whichever runtime runs it (spawned under Bun and Deno by wasi-abi.test.ts): loads
// build/kvkit.wasi.wasm through the runtime's node:wasi, runs the kernel grid through the ABI and prints
// one JSON line: the runtime and a SHA-256 of each case's output bytes.
import { createHash } from 'node:crypto'
import { loadWasiCore, runGrid } from './wasi-driver.mjs'

const runtime = typeof Deno !== 'undefined' ? 'deno' : typeof Bun !== 'undefined' ? 'bun' : 'node'
const core = await loadWasiCore(process.argv[2])
const digests = {}
for (const [name, bytes] of runGrid(core)) digests[name] = createHash('sha256').update(bytes).digest('hex')
console.log(JSON.stringify({ runtime, abiVersion: core.abiVersion(), digests }))

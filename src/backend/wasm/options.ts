import { Heap } from '../heap.js'
import type { WasmLoadOptions } from './load.js'

const SOURCES = ['wasm', 'relaxedWasm', 'threadsWasm', 'relaxedThreadsWasm'] as const
const KEYS: readonly string[] = [...SOURCES, 'relaxed', 'heap']

/**
 * What is wrong with a `wasm` option (WasmLoadOptions), or undefined. Checked before any work: a
 * misspelt key was ignored, and a source of another type (a number) was read as a relative URL, or never
 * read at all where the other build was chosen (Deno and Bun pick the relaxed build), so the same bad
 * call failed under one runtime and loaded under another.
 */
export function wasmOptionsProblem(opts: unknown): string | undefined {
  if (typeof opts !== 'object' || opts === null || Array.isArray(opts)) return `must be an object ({ ${KEYS.join(', ')} }), got ${describe(opts)}`
  const o = opts as Record<string, unknown>
  const unknown = Object.keys(o).find((k) => !KEYS.includes(k))
  if (unknown !== undefined) return `unknown option ${JSON.stringify(unknown)}; options: ${KEYS.join(', ')}`
  return wasmValuesProblem(o)
}

/**
 * What is wrong with the values of WasmLoadOptions' own keys (the sources, relaxed, heap), or undefined;
 * other keys are not looked at (createBackend passes its BackendOptions whole). loadWasm checks this: a
 * `relaxed: 'yes'` loaded the plain build without a word, a `wasm: 42` was read as a file named 42 next
 * to the loader.
 */
export function wasmValuesProblem(o: Record<string, unknown>): string | undefined {
  for (const k of SOURCES) {
    const v = o[k]
    if (v === undefined || typeof v === 'string' || v instanceof URL || v instanceof WebAssembly.Module || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) continue
    return `${k} must be a URL, a path string, bytes or a WebAssembly.Module, got ${describe(v)}`
  }
  const r = (o as WasmLoadOptions).relaxed
  if (r !== undefined && r !== true && r !== false && r !== 'auto') return `relaxed must be true, false or 'auto', got ${describe(r)}`
  if (o.heap !== undefined && !(o.heap instanceof Heap)) return `heap must be a Heap, got ${describe(o.heap)}`
  return undefined
}

function describe(v: unknown): string {
  if (v === null) return 'null'
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'object') return v.constructor?.name ?? 'object'
  return `${typeof v} ${String(v)}`
}

import { Heap } from '../heap.js'
import { wasmValuesProblem } from './options.js'
import { nodeFs } from '../node-fs.js'
import { errorText } from '../../model/error-text.js'

/**
 * Loads the compute core (build/kvkit.wasm, or build/kvkit.relaxed.wasm where relaxed SIMD is supported
 * and measures faster) into any JavaScript runtime: Node, Bun and Deno read the bytes from the file
 * system (node:fs, imported dynamically so browsers never see it); browsers and workers fetch them; a
 * caller may also hand in a compiled WebAssembly.Module, the bytes, or a URL.
 *
 * The module imports its memory (`env.memory`): the Heap's memory, so TypeScript owns every buffer and
 * kernels get raw pointers. Its own static data lives below `heapBase()`, and the Heap starts above it.
 */

/** A compiled module, its bytes, or where to find them. */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string

/** The exports of build/kvkit*.wasm that the kernels bind to (the runtime's model kernels add more). */
export interface KvkitExports {
  heapBase(): number
  /** 1 in the relaxed-SIMD builds, 0 in the plain ones (ABI 1.13; absent from older builds) */
  relaxedSimd?(): number
  copyBytes(dst: number, src: number, n: number): void
  scoreKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, scale: number, out: number): void
  softmaxRows(x: number, rows: number, n: number): void
  logSumExp(x: number, n: number): number
  softVote(x: number, rows: number, n: number, out: number): void
  columnMax(x: number, rows: number, n: number, from: number, count: number, rowNorm: number, colWeight: number, out: number): void
  topK(x: number, n: number, k: number, outIdx: number, scratch: number): void
  maxPool1d(x: number, n: number, kernel: number, out: number): void
  avgPool1d(x: number, n: number, kernel: number, out: number): void
  attend(q: number, qHeads: number, d: number, kTable: number, vTable: number, pageTokens: number, n: number, idx: number, nIdx: number, scale: number, out: number, lse: number): void
  pageMinMax(table: number, pageTokens: number, n: number, d: number, page: number, outMin: number, outMax: number): void
  chunkMeans(table: number, pageTokens: number, n: number, d: number, chunk: number, out: number): void
  compactRows(table: number, pageTokens: number, rowBytes: number, keep: number, nKeep: number): number
  compactRowsKV(kTable: number, vTable: number, pageTokens: number, kRowBytes: number, vRowBytes: number, keep: number, nKeep: number): number
  gatherChannels(src: number, dst: number, pageTokens: number, d: number, channels: number, nch: number, rows: number): void
  moveRows(table: number, pageTokens: number, rowBytes: number, pairs: number, count: number): void
  scorePackedKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, scale: number, out: number, scratch: number): void
  scorePackedKeysMixed(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, hi: number, scale: number, out: number, scratch: number): void
  scorePackedKeysInt(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, scale: number, out: number, scratch: number): void
  packedIntDotAdd(): number
  // key groups of 32, 64 or 128 tokens (ABI 1.15)
  scorePackedKeysGroupStrided(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, group: number, scale: number, out: number, outStride: number, scratch: number): void
  scorePackedKeysIntGroupStrided(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, group: number, scale: number, out: number, outStride: number, scratch: number): void
  attendPackedGroup(q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number, kBits: number, group: number, vBits: number, vGroup: number, scale: number, out: number, outStride: number, lse: number, scratch: number): void
  getPackedKeyRowsGroup(table: number, pageTokens: number, idx: number, nIdx: number, d: number, bits: number, group: number, out: number, scratch: number): void
  attendPacked(q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number, kBits: number, vBits: number, scale: number, out: number, outStride: number, lse: number, scratch: number): void
  attendPackedMixed(q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number, kBits: number, kHi: number, vBits: number, scale: number, out: number, outStride: number, lse: number, scratch: number): void
  scoreSignKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, hi: number, group: number, scale: number, out: number, scratch: number): void
  attendSign(q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number, kHi: number, group: number, vBits: number, vGroup: number, scale: number, out: number, outStride: number, lse: number, scratch: number): void
  getPackedKeyRows(table: number, pageTokens: number, idx: number, nIdx: number, d: number, bits: number, out: number, scratch: number): void
  getSignKeyRows(table: number, pageTokens: number, idx: number, nIdx: number, d: number, hi: number, group: number, out: number, scratch: number): void
  getPackedValueRows(table: number, pageTokens: number, idx: number, nIdx: number, vd: number, bits: number, vGroup: number, out: number): void
  packKeys(x: number, n: number, d: number, table: number, pageTokens: number, row0: number, bits: number, group: number): void
  packSignKeys(x: number, n: number, d: number, table: number, pageTokens: number, row0: number, hi: number, group: number): void
  packValues(x: number, n: number, vd: number, table: number, pageTokens: number, row0: number, bits: number, vGroup: number): void
  firstUnpackable(x: number, n: number): number
  scoreKeysF16(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, scale: number, out: number): void
  gatherChannelsF16(src: number, dst: number, pageTokens: number, d: number, channels: number, nch: number, rows: number): void
  toFloat16(src: number, dst: number, n: number): number
  fromFloat16(src: number, dst: number, n: number): void
  [name: string]: unknown
}

export type WasmBuild = 'simd' | 'relaxed'

export interface WasmLoadOptions {
  /** the plain SIMD build (default: build/kvkit.wasm next to this package) */
  wasm?: WasmSource
  /** the relaxed-SIMD build (default: build/kvkit.relaxed.wasm) */
  relaxedWasm?: WasmSource
  /** the plain build on a shared memory, for worker threads (default: build/kvkit.threads.wasm) */
  threadsWasm?: WasmSource
  /** the relaxed build on a shared memory (default: build/kvkit.relaxed-threads.wasm) */
  relaxedThreadsWasm?: WasmSource
  /**
   * 'auto' (default): the relaxed build when the runtime supports relaxed SIMD and it runs faster here,
   * unless a plain build is given without its relaxed counterpart (`wasm` without `relaxedWasm`, or
   * for threads `threadsWasm` without `relaxedThreadsWasm`): then the given one; true: the relaxed build
   * whenever supported; false: always the plain build.
   */
  relaxed?: boolean | 'auto'
  /**
   * an existing arena to bind to (its base must lie above the module's static data). Only instances
   * of one build may share a memory: each writes its own static data below the base.
   */
  heap?: Heap
}

export interface LoadedWasm {
  exports: KvkitExports
  heap: Heap
  build: WasmBuild
  /** the compiled module: worker threads instantiate it again on the same (shared) memory */
  module: WebAssembly.Module
  /** whether the arena is a shared memory (the threads builds) */
  shared: boolean
}

export class WasmLoadError extends Error {
  override name = 'WasmLoadError'
}

// v128.const x3; f32x4.relaxed_madd; end  -- validates only where relaxed SIMD is on
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // type: () -> v128
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x0a, 0x3d, 0x01, 0x3b, 0x00,
  ...v128Zero(), ...v128Zero(), ...v128Zero(),
  0xfd, 0x85, 0x02, // f32x4.relaxed_madd
  0x0b,
])
// the same with f32x4.add: validates where plain SIMD is on
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x2b, 0x01, 0x29, 0x00,
  ...v128Zero(), ...v128Zero(),
  0xfd, 0xe4, 0x01, // f32x4.add
  0x0b,
])
function v128Zero(): number[] {
  return [0xfd, 0x0c, ...new Array<number>(16).fill(0)]
}

export function supportsSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE)
}
export function supportsRelaxedSimd(): boolean {
  return typeof WebAssembly === 'object' && WebAssembly.validate(RELAXED_PROBE)
}

/** Compiled modules per source, so a second backend in the same process compiles nothing. */
const compiled = new Map<string, Promise<WebAssembly.Module>>()
/** The auto choice is measured once per process. */
let measuredChoice: Promise<WasmBuild> | undefined

/**
 * The build `relaxed: 'auto'` loads in this process: 'relaxed' where the runtime supports relaxed SIMD
 * and the relaxed build measured faster here (once a process: chooseFaster), else 'simd'. Processes
 * and workers that must run one build (the eval's workers) ask once and pass `relaxed` explicitly: each
 * measuring for itself may choose differently when the two builds run about as fast.
 */
export function autoWasmBuild(opts: Pick<WasmLoadOptions, 'wasm' | 'relaxedWasm'> = {}): Promise<WasmBuild> {
  if (!supportsRelaxedSimd()) return Promise.resolve('simd')
  measuredChoice ??= chooseFaster(compileSource(opts.wasm, BUILD_FILES.wasm), compileSource(opts.relaxedWasm, BUILD_FILES.relaxedWasm))
  return measuredChoice
}

/**
 * Loads a build into a fresh arena, or binds it to `opts.heap`. `shared`: the threads build of the same
 * choice (plain or relaxed) on a shared memory, which worker threads can instantiate too; a given heap
 * must then be shared, and a shared heap always takes the threads builds.
 */
export async function loadWasm(opts: WasmLoadOptions = {}, shared = false): Promise<LoadedWasm> {
  const problem = wasmValuesProblem(opts as Record<string, unknown>)
  if (problem !== undefined) throw new WasmLoadError(`loadWasm: ${problem}`)
  if (!supportsSimd()) throw new WasmLoadError('this JavaScript runtime has no WebAssembly SIMD; use the reference backend')
  const mode = opts.relaxed ?? 'auto'
  const relaxedOk = mode !== false && supportsRelaxedSimd()
  const givenShared = opts.heap ? opts.heap.memory.buffer instanceof SharedArrayBuffer : false
  // a plain build the caller supplied without its relaxed counterpart is the one they asked for: 'auto'
  // must not swap in the default relaxed build beside it
  const plainOnly = shared || givenShared ? opts.threadsWasm !== undefined && opts.relaxedThreadsWasm === undefined : opts.wasm !== undefined && opts.relaxedWasm === undefined
  let build: WasmBuild = 'simd'
  if (relaxedOk && mode === true) build = 'relaxed'
  else if (relaxedOk && mode === 'auto' && !plainOnly) build = await autoWasmBuild(opts)
  const resident = opts.heap && builds.get(opts.heap.memory)
  if (resident && resident !== build) {
    throw new WasmLoadError(`loadWasm: this heap already serves the ${resident} build; the ${build} build's static data would overwrite it (pass relaxed: ${resident === 'relaxed'})`)
  }
  if (opts.heap && shared && !givenShared) throw new WasmLoadError('loadWasm: worker threads need a shared arena, and the given heap is not shared')
  shared ||= givenShared
  const option = shared ? (build === 'relaxed' ? 'relaxedThreadsWasm' : 'threadsWasm') : build === 'relaxed' ? 'relaxedWasm' : 'wasm'
  const file = BUILD_FILES[option]
  const module = await compileSource(opts[option], file)
  const given = opts[option] === undefined ? file : `${option} (${sourceName(opts[option])})`
  const foreign = foreignImport(module)
  if (foreign !== undefined) {
    throw new WasmLoadError(`loadWasm: ${given} is not a kvkit build for JavaScript: it imports ${foreign} (kvkit's builds import env.memory and nothing else; build/kvkit.wasi.wasm is for WASI hosts, docs/abi.md)`)
  }
  const fresh = () => new WebAssembly.Memory({ initial: 16, maximum: 65536, shared })
  const link = async (memory: WebAssembly.Memory): Promise<KvkitExports> => {
    const exports = await instantiate(module, memory).catch((e: Error) => {
      // the only import is the memory: a link error is a build for the other kind of memory, which each
      // engine words differently (V8 "mismatch in shared state", JavaScriptCore "different ... 'shared'")
      if (!(e instanceof WebAssembly.LinkError)) throw e
      const want = shared ? `a shared memory (worker threads: pass the threads build, ${BUILD_FILES[option]})` : `an unshared memory (one thread: pass ${BUILD_FILES[option]}, not a threads build)`
      throw new WasmLoadError(`loadWasm: ${given} does not link to ${want}: ${e.message}`)
    })
    if (typeof exports.heapBase !== 'function') throw new WasmLoadError(`loadWasm: ${given} is not a kvkit build: it exports no heapBase`)
    const mismatch = buildMismatch(exports, build, shared, mode)
    if (mismatch) throw new WasmLoadError(`loadWasm: ${given} ${mismatch}`)
    return exports
  }
  // an instance writes its static data into the memory: a given arena (which may hold another
  // instance's) sees the module only once it has shown it is the build asked for, on a throwaway memory
  if (opts.heap) await link(fresh())
  const memory = opts.heap?.memory ?? fresh()
  const exports = await link(memory)
  const staticEnd = exports.heapBase() >>> 0
  let heap = opts.heap
  if (heap) {
    if (heap.base < staticEnd) throw new WasmLoadError(`loadWasm: the heap starts at ${heap.base}, inside the module's static data (which ends at ${staticEnd})`)
  } else {
    heap = new Heap(memory, Math.max(1 << 16, staticEnd))
  }
  builds.set(memory, build)
  return { exports, heap, build, module, shared }
}

/**
 * What is wrong where an instance is not the build that was chosen (`build`), or undefined: a plain
 * module given as relaxedWasm ran plain SIMD while the backend said 'relaxed' (kernelBuild, the eval's
 * records, intQueryLevels). Read from the module's relaxedSimd export (ABI 1.13); a module without it
 * (an older kvkit build) is taken as given.
 */
function buildMismatch(exports: KvkitExports, build: WasmBuild, shared: boolean, mode: boolean | 'auto'): string | undefined {
  if (typeof exports.relaxedSimd !== 'function') return undefined
  const actual: WasmBuild = exports.relaxedSimd() === 1 ? 'relaxed' : 'simd'
  if (actual === build) return undefined
  const name = (b: WasmBuild) => (b === 'relaxed' ? 'relaxed-SIMD' : 'plain SIMD')
  const option = shared ? (actual === 'relaxed' ? 'relaxedThreadsWasm' : 'threadsWasm') : actual === 'relaxed' ? 'relaxedWasm' : 'wasm'
  const asked = mode === 'auto' ? "relaxed: 'auto' chose" : `relaxed: ${mode} asks for`
  return `is the ${name(actual)} build, where ${asked} the ${name(build)} one: pass it as ${option}`
}

/** Which build's static data each memory holds. */
const builds = new WeakMap<WebAssembly.Memory, WasmBuild>()

async function instantiate(module: WebAssembly.Module, memory: WebAssembly.Memory): Promise<KvkitExports> {
  const abort = (msg: number, file: number, line: number, col: number): never => {
    throw new WasmLoadError(`wasm abort at ${file}:${line}:${col} (message pointer ${msg})`)
  }
  const instance = await WebAssembly.instantiate(module, { env: { memory, abort } })
  return instance.exports as unknown as KvkitExports
}

/** The default file of each build, by the option that overrides it. */
const BUILD_FILES = { wasm: 'kvkit.wasm', relaxedWasm: 'kvkit.relaxed.wasm', threadsWasm: 'kvkit.threads.wasm', relaxedThreadsWasm: 'kvkit.relaxed-threads.wasm' } as const

/** A string that is neither a URL nor an absolute path (new URL resolves it against a base). */
function isRelativePath(s: string): boolean {
  if (s.startsWith('/')) return false
  try {
    new URL(s)
    return false
  } catch {
    return true
  }
}

/** How an error names a source the caller gave. */
function sourceName(src: WasmSource | undefined): string {
  if (src instanceof WebAssembly.Module) return 'the WebAssembly.Module given'
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) return `the ${src.byteLength} bytes given`
  return new URL(String(src), import.meta.url).href
}

/** The first import other than env.memory, as module.name (kind), or undefined: kvkit's builds import only their memory. */
function foreignImport(module: WebAssembly.Module): string | undefined {
  const imports = WebAssembly.Module.imports(module)
  const other = imports.find((i) => !(i.module === 'env' && ((i.name === 'memory' && i.kind === 'memory') || (i.name === 'abort' && i.kind === 'function'))))
  if (other) return `${other.module}.${other.name} (${other.kind})`
  // a module with its own memory would never see the arena's buffers
  return imports.some((i) => i.kind === 'memory') ? undefined : 'no env.memory'
}

function compileSource(src: WasmSource | undefined, file: string): Promise<WebAssembly.Module> {
  if (src instanceof WebAssembly.Module) return Promise.resolve(src)
  // a CompileError's text differs per engine (V8: "expected 4 bytes", JavaScriptCore: "doesn't parse")
  // and names neither the build nor where its bytes came from
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) return compileNamed(src as BufferSource, `${file} (the ${src.byteLength} bytes given)`)
  const key = src === undefined ? `default:${file}` : String(src)
  let p = compiled.get(key)
  if (!p) {
    const url = src === undefined ? undefined : new URL(String(src), import.meta.url)
    // a relative string resolves against this module (dist/src/backend/wasm/), not the working directory
    const relative = typeof src === 'string' && isRelativePath(src) ? ` (the relative path ${JSON.stringify(src)} resolves against kvkit's loader, ${import.meta.url}: pass an absolute path or URL)` : ''
    const bytes = url ? readUrl(url).catch((e: Error) => Promise.reject(new WasmLoadError(`cannot read ${url.href}${relative}: ${e.message}`))) : readDefault(file)
    p = bytes.then((b) => compileNamed(b, url ? url.href : file))
    compiled.set(key, p)
    p.catch(() => compiled.delete(key))
  }
  return p
}

function compileNamed(bytes: BufferSource, what: string): Promise<WebAssembly.Module> {
  return WebAssembly.compile(bytes).catch((e: Error) => Promise.reject(new WasmLoadError(`${what} is not a valid WebAssembly module: ${e.message}`)))
}

/**
 * build/ sits at the package root: three levels above src/backend/wasm/ when running the TypeScript
 * sources, four above dist/src/backend/wasm/ when running the compiled package.
 */
async function readDefault(file: string): Promise<BufferSource> {
  const tried: string[] = []
  for (const up of ['../../../../build/', '../../../build/']) {
    const url = new URL(up + file, import.meta.url)
    try {
      return await readUrl(url)
    } catch (e) {
      tried.push(`${url.href} (${errorText(e)})`)
    }
  }
  throw new WasmLoadError(`cannot find ${file}; run \`npm run build\` or pass the module in the options. Tried: ${tried.join('; ')}`)
}

async function readUrl(url: URL): Promise<BufferSource> {
  if (url.protocol === 'file:') {
    return await (await nodeFs(`reading ${url.href}`)).readFile(url)
  }
  const res = await fetch(url)
  if (!res.ok) throw new WasmLoadError(`fetch ${url.href}: HTTP ${res.status}`)
  return await res.arrayBuffer()
}

/**
 * Times both builds on a small scoring + attention workload in throwaway memories (the real arena is
 * untouched) and keeps relaxed only if it is faster: relaxed instructions may be lowered slowly, and
 * fused multiply-add lengthens dependency chains. Both are warmed up first so the optimising tier
 * runs, then timed in alternation (best of several rounds) so background load hits both alike.
 */
async function chooseFaster(plain: Promise<WebAssembly.Module>, relaxed: Promise<WebAssembly.Module>): Promise<WasmBuild> {
  let workloads: (() => void)[]
  try {
    workloads = [await workload(await plain), await workload(await relaxed)]
  } catch {
    // no relaxed build shipped, or a given one that does not load here (another kind of memory, not a
    // kvkit build): the plain one, whose load names what is wrong with it; measured again next time
    measuredChoice = undefined
    return 'simd'
  }
  for (let i = 0; i < 20; i++) for (const w of workloads) w()
  await new Promise((resolve) => setTimeout(resolve, 0)) // let the optimising compiler finish
  const best = [Infinity, Infinity]
  for (let round = 0; round < 8; round++) {
    for (let b = 0; b < 2; b++) {
      const t0 = performance.now()
      workloads[b]()
      best[b] = Math.min(best[b], performance.now() - t0)
    }
  }
  return best[1] < best[0] * 0.97 ? 'relaxed' : 'simd'
}

async function workload(module: WebAssembly.Module): Promise<() => void> {
  const memory = new WebAssembly.Memory({ initial: 64, maximum: 65536 })
  const e = await instantiate(module, memory)
  const n = 1024
  const d = 128
  const heads = 4
  const q = Math.max(1 << 16, e.heapBase())
  const keys = q + heads * d * 4
  const vals = keys + n * d * 4
  const table = vals + n * d * 4
  const out = table + 16
  const f = new Float32Array(memory.buffer)
  for (let i = q >> 2; i < table >> 2; i++) f[i] = Math.sin(i) * 0.5
  const t32 = new Int32Array(memory.buffer)
  t32[table >> 2] = keys
  t32[(table >> 2) + 1] = vals
  return () => {
    for (let rep = 0; rep < 4; rep++) {
      e.scoreKeys(q, heads, d, table, n, n, 0.125, out)
      e.attend(q, heads, d, table, table + 4, n, n, 0, 0, 0.125, out, out + heads * n * 4)
    }
  }
}

import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import binaryen from 'binaryen'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { loadWasiCore, runGrid } from './wasi-driver.mjs'

// The WASI build (build/kvkit.wasi.wasm, `npm run build`) against its ABI document (docs/abi.md) and
// against the JavaScript build: same exports, same signatures, same bytes out for the same calls, under
// node:wasi here and under Bun's and Deno's WASI in child processes. Every call goes through the ABI.
const root = fileURLToPath(new URL('..', import.meta.url))
const wasiPath = `${root}build/kvkit.wasi.wasm`
const doc = readFileSync(`${root}docs/abi.md`, 'utf8')
const hosts: [string, string, string[]][] = [
  ['node', process.execPath, ['--no-warnings']],
  ['bun', `${root}node_modules/.bin/bun`, []],
  ['deno', `${root}node_modules/.bin/deno`, ['run', '--allow-read', '--no-prompt']],
]

/** The first fenced block of `lang` after the heading `## title` in docs/abi.md. */
function docBlock(title: string, lang: string): string {
  const section = doc.split(/^## /m).find((s) => s.startsWith(title + '\n'))
  const m = section?.match(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```', 'm'))
  if (!m) throw new Error(`docs/abi.md has no \`\`\`${lang} block under "## ${title}"`)
  return m[1]
}

type Sig = { params: string[]; result: string }
const C_TYPES: Record<string, string> = { void: 'none', float: 'f32', int32_t: 'i32', uint32_t: 'i32', kvkit_ptr: 'i32' }

/** name -> wasm signature of each prototype in the header block, C types mapped as the ABI says. */
function documentedFunctions(): Map<string, Sig> {
  const header = docBlock('The header', 'c').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^#.*$/gm, '')
  const wasmType = (c: string, where: string): string => {
    const t = C_TYPES[c]
    if (!t) throw new Error(`docs/abi.md: ${where} has the C type '${c}', which the ABI does not map to wasm`)
    return t
  }
  const out = new Map<string, Sig>()
  for (const decl of header.split(';').map((s) => s.replace(/\s+/g, ' ').trim()).filter(Boolean)) {
    if (decl.startsWith('typedef ')) continue
    const m = decl.match(/^(\w+) (\w+) ?\((.*)\)$/)
    if (!m) throw new Error(`docs/abi.md: cannot read the prototype '${decl}'`)
    const [, ret, name, args] = m
    const params = args.trim() === 'void' ? [] : args.split(',').map((a) => wasmType(a.trim().split(' ')[0], `${name}(${a.trim()})`))
    out.set(name, { params, result: wasmType(ret, `${name}'s result`) })
  }
  return out
}

const TYPE_NAMES = new Map<number, string>([
  [binaryen.none, 'none'], [binaryen.i32, 'i32'], [binaryen.f32, 'f32'], [binaryen.i64, 'i64'], [binaryen.f64, 'f64'], [binaryen.v128, 'v128'],
])

/** A module's exports: functions with their wasm signatures, and the other kinds by name. */
function moduleExports(file: string): { functions: Map<string, Sig>; others: string[]; imports: string[] } {
  const bytes = readFileSync(file)
  const mod = binaryen.readBinary(bytes)
  try {
    const functions = new Map<string, Sig>()
    const others: string[] = []
    for (let i = 0; i < mod.getNumExports(); i++) {
      const e = binaryen.getExportInfo(mod.getExportByIndex(i))
      if (e.kind !== binaryen.ExternalFunction) {
        others.push(e.name)
        continue
      }
      const f = binaryen.getFunctionInfo(mod.getFunction(e.value))
      functions.set(e.name, { params: binaryen.expandType(f.params).map((t) => TYPE_NAMES.get(t)!), result: TYPE_NAMES.get(f.results)! })
    }
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes)).map((i) => `${i.module}.${i.name}`)
    return { functions, others, imports }
  } finally {
    mod.dispose()
  }
}

/** The JavaScript build's backend as a grid core: its kernels, with the TypeScript Heap as allocator. */
function jsCore(b: CreatedBackend) {
  return { ...b, alloc: (bytes: number) => b.heap.alloc(bytes), free: (ptr: number) => b.heap.release(ptr), buffer: () => b.heap.memory.buffer }
}

function runHost(bin: string, args: string[], script: string): string {
  return execFileSync(bin, [...args, script, wasiPath], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } })
}

let js: CreatedBackend
let jsGrid: Map<string, Uint8Array>
beforeAll(async () => {
  expect(existsSync(wasiPath), 'build/kvkit.wasi.wasm is missing: run `npm run build` first').toBe(true)
  js = await createBackend('wasm', { relaxed: false })
  jsGrid = runGrid(jsCore(js))
})

describe('the WASI module exports the ABI docs/abi.md documents', () => {
  const documented = documentedFunctions()
  const wasi = moduleExports(wasiPath)

  it('exports exactly the documented functions, each with its documented signature', () => {
    const exported = [...wasi.functions.keys()].filter((n) => n !== '_initialize')
    const undocumented = exported.filter((n) => !documented.has(n))
    expect(undocumented, `the WASI build exports ${undocumented.join(', ')} (new kernels of assembly/index.ts?), which docs/abi.md does not declare: add their prototypes to its header block and step the minor ABI version (assembly/wasi/abi.ts)`).toEqual([])
    expect(exported.sort(), 'docs/abi.md declares functions the module does not export').toEqual([...documented.keys()].sort())
    for (const [name, sig] of documented) expect(wasi.functions.get(name), name).toEqual(sig)
  })

  it('is a reactor: exports memory and _initialize, no _start, and imports only WASI preview 1', () => {
    expect(wasi.others).toEqual(['memory'])
    expect(wasi.functions.get('_initialize')).toEqual({ params: [], result: 'none' })
    expect(wasi.functions.has('_start')).toBe(false)
    expect(wasi.imports.sort()).toEqual(['wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit'])
  })

  it('exports every kernel of the JavaScript build with the same signature (one source)', () => {
    const jsBuild = moduleExports(`${root}build/kvkit.wasm`)
    expect(jsBuild.functions.size).toBeGreaterThan(10)
    for (const [name, sig] of jsBuild.functions) {
      expect(documented.has(name), `assembly/index.ts exports ${name}, which docs/abi.md does not document: add it to the header block`).toBe(true)
      expect(wasi.functions.get(name), name).toEqual(sig)
    }
  })

  it('reports the version the document states', async () => {
    const core = await loadWasiCore(wasiPath)
    const [, major, minor] = doc.match(/^# .*\(version (\d+)\.(\d+)\)$/m)!
    expect(core.abiVersion()).toBe((Number(major) << 16) | Number(minor))
    const [, define] = docBlock('The header', 'c').match(/^#define KVKIT_ABI_VERSION (0x[0-9a-f]{8})u /m)!
    expect(core.abiVersion()).toBe(Number(define))
  })
})

describe('the allocator the WASI module exports', () => {
  it('hands out 16-byte aligned, disjoint blocks above the static data', async () => {
    const core = await loadWasiCore(wasiPath)
    const sizes = [1, 15, 16, 17, 100, 4096, 70_000]
    const blocks = sizes.map((s) => [core.alloc(s), s])
    for (const [p] of blocks) expect(p % 16).toBe(0)
    const sorted = [...blocks].sort((a, b) => a[0] - b[0])
    for (let i = 1; i < sorted.length; i++) expect(sorted[i][0]).toBeGreaterThanOrEqual(sorted[i - 1][0] + sorted[i - 1][1])
    expect(sorted[0][0]).toBeGreaterThanOrEqual(core.heapBase())
  })

  it('takes freed blocks back: alloc and free in a loop never grow the memory', async () => {
    const core = await loadWasiCore(wasiPath)
    core.free(core.alloc(300_000))
    const settled = core.buffer().byteLength
    for (let i = 0; i < 2000; i++) {
      const blocks = [core.alloc(300_000), core.alloc(1 + (i % 5000)), core.alloc(64)]
      for (const p of blocks.reverse()) core.free(p)
    }
    expect(core.buffer().byteLength).toBe(settled)
  })

  it('returns 0 for size 0 and for sizes above 2^30 - 16, and free(0) does nothing', async () => {
    const core = await loadWasiCore(wasiPath)
    expect(core.alloc(0)).toBe(0)
    expect(core.alloc(2 ** 30 - 15)).toBe(0)
    expect(core.alloc(0xffffffff)).toBe(0)
    core.free(0)
    expect(core.alloc(64)).toBeGreaterThan(0)
  })

  it('grows the memory for a large block, and kernels run there', async () => {
    const core = await loadWasiCore(wasiPath)
    const before = core.buffer().byteLength
    const n = 1 << 20
    const x = core.alloc(n * 4)
    expect(core.buffer().byteLength).toBeGreaterThan(before)
    new Float32Array(core.buffer(), x, n).fill(0.5)
    expect(core.logSumExp(x, n)).toBeCloseTo(0.5 + Math.log(n), 4)
    core.free(x)
  })
})

describe('kernels through the ABI write the same bytes as the JavaScript build', () => {
  it('under node:wasi, on every case of the grid', async () => {
    const wasiGrid = runGrid(await loadWasiCore(wasiPath))
    expect(wasiGrid.size).toBe(jsGrid.size)
    expect(wasiGrid.size).toBeGreaterThan(250)
    for (const [name, bytes] of jsGrid) {
      expect(bytes.some((b) => b !== 0xff), `${name} wrote nothing`).toBe(true)
      expect(Buffer.compare(Buffer.from(wasiGrid.get(name)!), Buffer.from(bytes)), name).toBe(0)
    }
  })

  it('fmaPeak, the one kernel outside the grid, returns the same number', async () => {
    const core = await loadWasiCore(wasiPath)
    expect(core.fmaPeak(1000, 0.999999, 1e-7)).toBe(js.fmaPeak(1000))
  })

  it.each(hosts.filter(([name]) => name !== 'node'))('under %s WASI, on every case of the grid', (name, bin, args) => {
    expect(existsSync(bin), `${name} binary missing at ${bin}`).toBe(true)
    const report = JSON.parse(runHost(bin, args, `${root}test/wasi-host.mjs`).trim().split('\n').pop()!)
    expect(report.runtime).toBe(name)
    expect(Object.keys(report.digests).length).toBe(jsGrid.size)
    for (const [caseName, bytes] of jsGrid) {
      expect(report.digests[caseName], caseName).toBe(createHash('sha256').update(bytes).digest('hex'))
    }
  })
})

describe("docs/abi.md's worked example, run as written", () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvkit-abi-'))
  const example = join(dir, 'example.mjs')
  writeFileSync(example, docBlock('Worked example', 'js'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  /** The example's computation on the JavaScript build: the same inputs, written here independently. */
  function expected(needles: number[]): { top: number[]; lse: number[]; out: number[] } {
    const [n, d, heads, keep] = [1000, 64, 2, 4]
    const h = js.heap
    const q = h.f32From(Array.from({ length: heads * d }, (_, i) => Math.cos((i % d) + Math.floor(i / d) / 2)))
    const keys = h.f32From(Array.from({ length: n * d }, (_, i) => {
      const [t, c] = [Math.floor(i / d), i % d]
      return needles.includes(t) ? Math.cos(c) : 0.3 * Math.sin(t * 31 + c * 7)
    }))
    const values = h.f32From(Array.from({ length: n * d }, (_, i) => Math.sin(Math.floor(i / d) + (i % d) / d)))
    const kTable = h.i32From([keys.ptr])
    const vTable = h.i32From([values.ptr])
    const scores = h.allocF32(heads * n), vote = h.allocF32(n), top = h.allocI32(keep), scratch = h.allocI32(n)
    const out = h.allocF32(heads * d), lse = h.allocF32(heads)
    js.scoreKeys(q.ptr, heads, d, kTable.ptr, n, n, 1 / Math.sqrt(d), scores.ptr)
    js.softVote(scores.ptr, heads, n, vote.ptr)
    js.topK(vote.ptr, n, keep, top.ptr, scratch.ptr)
    js.attend(q.ptr, heads, d, kTable.ptr, vTable.ptr, n, n, top.ptr, keep, 1 / Math.sqrt(d), out.ptr, lse.ptr)
    const result = { top: [...top.view.slice(0, keep)], lse: [...lse.view.slice(0, heads)], out: [...out.view.slice(0, heads * d)] }
    for (const b of [q, keys, values, kTable, vTable, scores, vote, top, scratch, out, lse]) b.free()
    return result
  }

  it.each(hosts)('under %s: finds the needles and matches the JavaScript build bit for bit', (name, bin, args) => {
    expect(existsSync(bin), `${name} binary missing at ${bin}`).toBe(true)
    const printed = JSON.parse(runHost(bin, args, example).trim().split('\n').pop()!)
    const stated = JSON.parse(doc.match(/It prints one JSON line whose `top` is `(\[[\d,]+\])`/)![1])
    const needles = JSON.parse(docBlock('Worked example', 'js').match(/const needles = (\[[\d, ]+\])/)![1])
    expect(printed.top).toEqual(stated)
    expect(printed.top).toEqual(needles)
    expect(printed.abi >>> 16).toBe(1)
    expect(printed).toEqual({ abi: printed.abi, ...expected(needles) })
  })
})

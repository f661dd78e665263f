// Drives every kernel of docs/abi.md over a grid of shapes through a "core": the ABI's functions plus
// alloc, free and buffer() (the current memory). The WASI module's exports are a core as they are; the
// JavaScript build's backend becomes one with its Heap as allocator. Same seed, same calls, so the two
// must write the same bytes. JavaScript that vitest (in Node), Bun and Deno load as it is; they also load
// the one TypeScript file it imports, the project's seeded generator.
import { readFile } from 'node:fs/promises'
import { WASI } from 'node:wasi'
import { mulberry32 } from '../src/policies/seeded-random.ts'

/** Instantiates build/kvkit.wasi.wasm as a WASI reactor in this runtime, as docs/abi.md describes. */
export async function loadWasiCore(path) {
  const wasi = new WASI({ version: 'preview1', returnOnExit: true })
  const { instance } = await WebAssembly.instantiate(await readFile(path), { wasi_snapshot_preview1: wasi.wasiImport })
  const e = instance.exports
  if (wasi.initialize) wasi.initialize(instance)
  else {
    wasi.setMemory(e.memory)
    e._initialize()
  }
  return { ...e, buffer: () => e.memory.buffer }
}

/** Writes floats (or int32 when `int`) into a fresh block; returns its pointer. */
function put(core, values, int = false) {
  const ptr = core.alloc(Math.max(1, values.length) * 4)
  new (int ? Int32Array : Float32Array)(core.buffer(), ptr, values.length).set(values)
  return ptr
}

/** n x d rows in pages of pageTokens rows, each page its own block; returns the table's pointer. */
function paged(core, rows, n, d, pageTokens) {
  const pages = []
  for (let p = 0; p * pageTokens < n; p++) pages.push(put(core, rows.subarray(p * pageTokens * d, Math.min(n, (p + 1) * pageTokens) * d)))
  return { table: put(core, pages, true), blocks: [...pages] }
}

/**
 * The grid: [name, run] pairs; run(core, rand) allocates its inputs, calls one kernel and returns the
 * [ptr, bytes] ranges it wrote, which runGrid reads back.
 */
function cases() {
  const list = []
  const add = (name, run) => list.push([name, run])
  const floats = (rand, len, s = 1) => Float32Array.from({ length: len }, () => (rand() * 2 - 1) * s)
  // outputs start as 0xff bytes (NaN, or -1 as int32), so a kernel that writes nothing shows
  const out = (core, bytes, held, init = 0xff) => {
    const p = core.alloc(Math.max(16, bytes))
    new Uint8Array(core.buffer(), p, bytes).fill(init)
    held.push(p)
    return p
  }

  for (const qHeads of [1, 2, 3, 4, 6]) for (const d of [5, 64, 128]) for (const [n, pt] of [[1, 1], [7, 3], [130, 16], [130, 130]]) {
    add(`scoreKeys qHeads=${qHeads} d=${d} n=${n} pageTokens=${pt}`, (core, rand, held) => {
      const k = paged(core, floats(rand, n * d), n, d, pt)
      held.push(k.table, ...k.blocks)
      const q = put(core, floats(rand, qHeads * d))
      const o = out(core, qHeads * n * 4, held)
      held.push(q)
      core.scoreKeys(q, qHeads, d, k.table, pt, n, 1 / Math.sqrt(d), o)
      return [[o, qHeads * n * 4]]
    })
  }
  for (const qHeads of [1, 3, 9]) for (const d of [4, 36, 64]) for (const [n, pt] of [[1, 1], [19, 16], [100, 100]]) for (const gathered of [false, true]) {
    add(`attend qHeads=${qHeads} d=${d} n=${n} pageTokens=${pt} ${gathered ? 'gathered' : 'dense'}`, (core, rand, held) => {
      const k = paged(core, floats(rand, n * d), n, d, pt)
      const v = paged(core, floats(rand, n * d), n, d, pt)
      const sel = gathered ? Array.from({ length: n }, (_, i) => i).filter((i) => i === 0 || rand() < 0.4) : []
      const idx = gathered ? put(core, sel, true) : 0
      const q = put(core, floats(rand, qHeads * d, 2))
      const o = out(core, qHeads * d * 4, held)
      const lse = out(core, qHeads * 4, held)
      held.push(k.table, ...k.blocks, v.table, ...v.blocks, q, ...(gathered ? [idx] : []))
      core.attend(q, qHeads, d, k.table, v.table, pt, n, idx, sel.length, 0.125, o, lse)
      return [[o, qHeads * d * 4], [lse, qHeads * 4]]
    })
  }
  for (const rows of [1, 3]) for (const n of [1, 5, 257]) {
    // the last of several rows is all -inf: nothing attendable, zeros by the ABI
    const fill = (rand) => Float32Array.from({ length: rows * n }, (_, i) => (rows > 1 && i >= (rows - 1) * n ? -Infinity : (rand() * 2 - 1) * 8))
    add(`softmaxRows rows=${rows} n=${n}`, (core, rand, held) => {
      const x = put(core, fill(rand))
      held.push(x)
      core.softmaxRows(x, rows, n)
      return [[x, rows * n * 4]]
    })
    add(`softVote rows=${rows} n=${n}`, (core, rand, held) => {
      const x = put(core, fill(rand))
      const o = out(core, n * 4, held)
      held.push(x)
      core.softVote(x, rows, n, o)
      return [[o, n * 4], [x, rows * n * 4]]
    })
    add(`logSumExp n=${rows * n}`, (core, rand, held) => {
      const x = put(core, floats(rand, rows * n, 30))
      const o = out(core, 4, held)
      held.push(x)
      new Float32Array(core.buffer(), o, 1)[0] = core.logSumExp(x, rows * n)
      return [[o, 4]]
    })
  }
  for (const n of [1, 10, 1000]) for (const k of new Set([1, Math.max(1, n >> 1), n])) for (const ties of [false, true]) {
    add(`topK n=${n} k=${k}${ties ? ' ties, -0, NaN, infinities' : ''}`, (core, rand, held) => {
      const specials = [0, -0, NaN, Infinity, -Infinity, 1, 1]
      const x = put(core, Float32Array.from({ length: n }, () => (ties ? specials[Math.floor(rand() * specials.length)] : rand() - 0.5)))
      const o = out(core, k * 4, held)
      const scratch = out(core, n * 4, held)
      held.push(x)
      core.topK(x, n, k, o, scratch)
      return [[o, k * 4]]
    })
  }
  for (const kind of ['maxPool1d', 'avgPool1d']) for (const n of [1, 5, 100]) for (const kernel of [1, 3, 7]) {
    add(`${kind} n=${n} kernel=${kernel}`, (core, rand, held) => {
      const x = put(core, floats(rand, n))
      const o = out(core, n * 4, held)
      held.push(x)
      core[kind](x, n, kernel, o)
      return [[o, n * 4]]
    })
  }
  for (const n of [1, 37]) for (const d of [3, 8]) for (const page of [1, 4, 64]) for (const pt of [16, n]) {
    add(`pageMinMax and chunkMeans n=${n} d=${d} page=${page} pageTokens=${pt}`, (core, rand, held) => {
      const k = paged(core, floats(rand, n * d), n, d, pt)
      const bytes = Math.ceil(n / page) * d * 4
      const lo = out(core, bytes, held), hi = out(core, bytes, held), mean = out(core, bytes, held)
      held.push(k.table, ...k.blocks)
      core.pageMinMax(k.table, pt, n, d, page, lo, hi)
      core.chunkMeans(k.table, pt, n, d, page, mean)
      return [[lo, bytes], [hi, bytes], [mean, bytes]]
    })
  }
  for (const T of [1, 3, 5]) for (const inDim of [7, 64]) for (const outDim of [1, 9, 32]) for (const bias of [false, true]) {
    add(`matmul T=${T} in=${inDim} out=${outDim}${bias ? ' bias' : ''}`, (core, rand, held) => {
      const x = put(core, floats(rand, T * inDim))
      const w = put(core, floats(rand, outDim * inDim))
      const b = bias ? put(core, floats(rand, outDim)) : 0
      const y = out(core, T * outDim * 4, held)
      held.push(x, w, ...(bias ? [b] : []))
      core.matmul(x, w, b, y, T, inDim, outDim)
      return [[y, T * outDim * 4]]
    })
  }
  for (const T of [1, 3]) for (const dim of [5, 64]) {
    add(`rmsnorm T=${T} dim=${dim}`, (core, rand, held) => {
      const x = put(core, floats(rand, T * dim, 3))
      const g = put(core, floats(rand, dim))
      const o = out(core, T * dim * 4, held)
      held.push(x, g)
      core.rmsnorm(x, g, o, T, dim, 1e-5)
      return [[o, T * dim * 4]]
    })
  }
  for (const T of [1, 2]) for (const heads of [1, 3]) for (const d of [6, 64]) {
    add(`rope T=${T} heads=${heads} d=${d}`, (core, rand, held) => {
      const x = put(core, floats(rand, T * heads * d))
      const cos = put(core, floats(rand, T * (d >> 1)))
      const sin = put(core, floats(rand, T * (d >> 1)))
      held.push(x, cos, sin)
      core.rope(x, T, heads, d, cos, sin)
      return [[x, T * heads * d * 4]]
    })
  }
  for (const n of [1, 7, 64]) {
    add(`swiglu and addInPlace n=${n}`, (core, rand, held) => {
      const gate = put(core, floats(rand, n, 6))
      const up = put(core, floats(rand, n))
      const o = out(core, n * 4, held)
      held.push(gate, up)
      core.swiglu(gate, up, o, n)
      core.addInPlace(up, o, n)
      return [[o, n * 4], [up, n * 4]]
    })
  }
  for (const hq of [1, 3]) for (const T of [1, 5]) for (const [kd, vd] of [[8, 8], [6, 10]]) for (const [n, pt] of [[5, 4], [70, 70]]) {
    add(`attendCausal and attentionMass hq=${hq} T=${T} kd=${kd} vd=${vd} n=${n} pageTokens=${pt}`, (core, rand, held) => {
      const k = paged(core, floats(rand, n * kd), n, kd, pt)
      const v = paged(core, floats(rand, n * vd), n, vd, pt)
      const qStride = hq * kd
      const q = put(core, floats(rand, T * qStride, 2))
      const rows = T * hq
      const o = out(core, rows * vd * 4, held)
      const lse = out(core, rows * 4, held)
      const scratch = out(core, (256 + Math.ceil(rows / 4) * 4 * (vd + 2)) * 4, held)
      const mass = out(core, n * 4, held, 0) // attentionMass adds to it
      held.push(k.table, ...k.blocks, v.table, ...v.blocks, q)
      const visible0 = n - T + 1
      core.attendCausal(q, qStride, hq, T, kd, vd, k.table, v.table, pt, n, visible0, 0.3, o, hq * vd, lse, scratch)
      core.attentionMass(q, qStride, hq, T, kd, k.table, pt, n, visible0, 0.3, lse, mass, scratch)
      return [[o, rows * vd * 4], [lse, rows * 4], [mass, n * 4]]
    })
  }
  add('copyBytes n=1000', (core, rand, held) => {
    const src = put(core, floats(rand, 250))
    const dst = out(core, 1000, held)
    held.push(src)
    core.copyBytes(dst, src, 1000)
    return [[dst, 1000]]
  })
  return list
}

/** Runs the grid on a core; returns case name -> the bytes the kernel wrote, in order. */
export function runGrid(core) {
  const results = new Map()
  let seed = 1
  for (const [name, run] of cases()) {
    const held = []
    const ranges = run(core, mulberry32(seed++), held)
    const parts = ranges.map(([p, bytes]) => new Uint8Array(core.buffer(), p, bytes).slice())
    const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0))
    let at = 0
    for (const p of parts) {
      all.set(p, at)
      at += p.length
    }
    results.set(name, all)
    for (const p of held) core.free(p)
  }
  return results
}

// Run by test/runtimes-packed-int-dot-add.test.ts under Node (with relaxed SIMD switched on), Bun and Deno:
// the relaxed build's integer key scoring (scorePackedKeysInt) on seeded int4, int2 and int1 pages, with
// whichever dot product the engine gets right (packedIntDotAdd), in key groups of 32, 64 and 128 tokens
// (groups of 64 and 128 take their own tile path with the accumulating dot). Prints one JSON line: the build, whether
// the accumulating dot ran, and the scores' float32 bits per width, so runtimes can be compared bit for bit.
// The strided entry (scorePackedKeysIntStrided, what a kernel thread calls for its piece of the keys) is
// run on the same pages through a second instance of the build on the backend's arena (the backend binds
// only the unstrided export): each head's row at a stride past n (`strided`: the rows, and whether the
// words between them were left alone) and in the threads' pieces of 32 keys (`pieces`).
import { createBackend, loadWasm } from '../dist/src/index.js'
import { PagedKVCache } from '../dist/src/cache/paged-cache.js'
import { packedIntScratch } from '../dist/src/backend/backend.js'

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node'

function values(n, seed, scale = 1) {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), ((s / 2 ** 32) * 2 - 1) * scale))
}

const b = await createBackend('wasm', { relaxed: true })
const h = b.heap
const { exports: wasm } = await loadWasm({ relaxed: true, heap: h })
const bitsOf = {}
const strided = {}
const gapsLeft = {}
const pieces = {}
const SENTINEL = 0x7fc0beef // a NaN no kernel writes
const bitsOfBuf = (buf) => Array.from(new Uint32Array(buf.view.slice().buffer))
/** the strided entry on the same pages: each head's row at a stride past n, and the threads' pieces of 32 keys */
function strideChecks(key, seg, q, qHeads, d, bits, scratch) {
  // each head's row `stride` floats after the previous (a stride that is no multiple of 4: rows unaligned)
  const stride = seg.n + 11
  const wide = h.allocF32(qHeads * stride)
  new Uint32Array(wide.view.buffer, wide.view.byteOffset, wide.view.length).fill(SENTINEL)
  wasm.scorePackedKeysIntStrided(q.ptr, qHeads, d, seg.kTable, seg.pageTokens, seg.n, bits, 0.125, wide.ptr, stride, scratch.ptr)
  const wideBits = bitsOfBuf(wide)
  strided[key] = Array.from({ length: qHeads }, (_, hd) => wideBits.slice(hd * stride, hd * stride + seg.n)).flat()
  gapsLeft[key] = Array.from({ length: qHeads }, (_, hd) => wideBits.slice(hd * stride + seg.n, (hd + 1) * stride)).flat().every((x) => x === SENTINEL)
  // as the kernel threads split the keys (threads/scoring.ts): pieces of 32 keys (one group; pieceKeys for 32-token pages) from their first page, each
  // writing its part of every head's row of n in place
  const parts = h.allocF32(qHeads * seg.n)
  for (let k0 = 0; k0 < seg.n; k0 += 32) {
    const k1 = Math.min(seg.n, k0 + 32)
    wasm.scorePackedKeysIntStrided(q.ptr, qHeads, d, seg.kTable + (k0 / seg.pageTokens) * 4, seg.pageTokens, k1 - k0, bits, 0.125, parts.ptr + k0 * 4, seg.n, scratch.ptr)
  }
  pieces[key] = bitsOfBuf(parts)
}

// head sizes 64 and 128, query groups of 1 and 3, lengths off the groups
for (const group of [32, 64, 128]) {
  for (const [d, qHeads, n] of [[64, 3, 333], [128, 1, 96], [40, 2, 77]]) {
    for (const bits of [4, 2, 1]) {
      const cache = new PagedKVCache(b, { layers: 1, kvHeads: 1, headDim: d, pageTokens: group })
      cache.append(0, values(n * d, d + n, 3), values(n * d, 2 * n), Int32Array.from({ length: n }, (_, i) => i))
      // whole groups of 32; for 64 and 128 every token, the last group partial
      const upto = group === 32 ? Math.floor(n / 32) * 32 : n
      cache.apply({ heads: [], quantize: [{ layer: 0, head: 0, upto, keys: `int${bits}`, values: 'int8', group }] })
      const seg = cache.segments(0, 0)[0]
      const q = h.f32From(values(qHeads * d, 5 + d, 2)), out = h.allocF32(qHeads * seg.n), scratch = h.allocF32(packedIntScratch(qHeads, d, group))
      b.scorePackedKeysInt(q.ptr, qHeads, d, seg.kTable, seg.pageTokens, seg.n, bits, 0.125, out.ptr, scratch.ptr, group)
      const key = `${group === 32 ? '' : `group${group} `}d${d} heads${qHeads} n${seg.n} int${bits}`
      bitsOf[key] = bitsOfBuf(out)
      // the strided entry of groups of 32 (scorePackedKeysIntStrided; other groups have their own export)
      if (group === 32) strideChecks(key, seg, q, qHeads, d, bits, scratch)
      cache.dispose()
    }
  }
}
console.log(JSON.stringify({ runtime, build: b.build, dotAdd: b.packedIntDotAdd(), stridedDotAdd: wasm.packedIntDotAdd(), scores: bitsOf, strided, gapsLeft, pieces }))

// Run by test/runtimes-packed-int-dot-add.test.ts under Node (with relaxed SIMD switched on), Bun and Deno:
// the relaxed build's integer key scoring (scorePackedKeysInt) on seeded int4, int2 and int1 pages, with
// whichever dot product the engine gets right (packedIntDotAdd), in key groups of 32, 64 and 128 tokens
// (groups of 64 and 128 take their own tile path with the accumulating dot). Prints one JSON line: the build, whether
// the accumulating dot ran, and the scores' float32 bits per width, so runtimes can be compared bit for bit.
import { createBackend } from '../dist/src/index.js'
import { PagedKVCache } from '../dist/src/cache/paged-cache.js'
import { packedIntScratch } from '../dist/src/backend/backend.js'

const runtime = typeof globalThis.Deno !== 'undefined' ? 'deno' : typeof globalThis.Bun !== 'undefined' ? 'bun' : 'node'

function values(n, seed, scale = 1) {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0), ((s / 2 ** 32) * 2 - 1) * scale))
}

const b = await createBackend('wasm', { relaxed: true })
const h = b.heap
const bitsOf = {}
// head sizes 64 and 128, query groups of 1 and 3, lengths off the 32-token groups
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
      bitsOf[`${group === 32 ? '' : `group${group} `}d${d} heads${qHeads} n${seg.n} int${bits}`] = Array.from(new Uint32Array(out.view.slice().buffer))
      cache.dispose()
    }
  }
}
console.log(JSON.stringify({ runtime, build: b.build, dotAdd: b.packedIntDotAdd(), scores: bitsOf }))

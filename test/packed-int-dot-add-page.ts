import { createBackend } from '../src/backend/index.js'
import { FORMATS, scoreBoth } from './packed-int-cases.js'
import { normals, rng } from './seeded.js'

// Bundled for the browser by test/packed-int-dot-add-in-chromium.test.ts: the relaxed build's integer key
// scoring on the grid of test/packed-int.test.ts, run in the page, where the engine's
// i32x4.relaxed_dot_i8x16_i7x16_add_s is correct and so the accumulating path (and int4's raw nibble tile)
// runs. Returns plain arrays; the test asserts on them in Node.

/** token counts (partial groups and pages), and (head dim, query heads): blocks of 1-4 heads, and a full block plus 1-3 */
export const TOKENS = [1, 31, 32, 33, 77, 130]
export const SHAPES = [[40, 1], [64, 2], [128, 3], [64, 4], [40, 5], [64, 6], [128, 7]] as const
/** the top-k case: int4 keys, several pages, two head blocks */
export const TOPK = { n: 600, d: 128, qHeads: 7 }

export interface CaseResult {
  format: string
  n: number
  d: number
  qHeads: number
  out: number[]
  ref: number[]
  bound: number[]
}

export interface PageResult {
  build: string | undefined
  /** packedIntDotAdd() before the first scorePackedKeysInt call (unchecked: 0) and after the grid */
  dotAddBefore: number
  dotAddAfter: number
  cases: CaseResult[]
  /** the top-k case's scores [qHeads][n]: the integer kernel's, the exact fused kernel's, and the bound */
  topK: { out: number[]; exact: number[]; bound: number[] }
}

/** runs the grid on the relaxed build loaded from `wasmUrl` (build/kvkit.relaxed.wasm) */
export async function runCases(wasmUrl: string): Promise<PageResult> {
  const b = await createBackend('wasm', { relaxed: true, relaxedWasm: new URL(wasmUrl, location.href) })
  const dotAddBefore = b.packedIntDotAdd!()
  const cases: CaseResult[] = []
  for (const format of FORMATS) {
    for (const n of TOKENS) {
      for (const [d, qHeads] of SHAPES) {
        const keys = normals(rng(n * d + qHeads), n * d)
        for (let i = 0; i < keys.length; i += 13) keys[i] *= 6 // outliers inside groups
        const r = scoreBoth(b, keys, n, d, format, normals(rng(qHeads + 5), qHeads * d), qHeads)
        cases.push({ format, n, d, qHeads, out: Array.from(r.out), ref: Array.from(r.ref), bound: Array.from(r.bound) })
      }
    }
  }
  const { n, d, qHeads } = TOPK
  const r = scoreBoth(b, normals(rng(77), n * d), n, d, 'int4', normals(rng(78), qHeads * d), qHeads)
  const topK = { out: Array.from(r.out), exact: Array.from(r.exact), bound: Array.from(r.bound) }
  return { build: b.build, dotAddBefore, dotAddAfter: b.packedIntDotAdd!(), cases, topK }
}

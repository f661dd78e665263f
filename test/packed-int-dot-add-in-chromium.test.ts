import { chromium } from 'playwright-core'
import { beforeAll, describe, expect, it } from 'vitest'
import { bundleForBrowser, CHROMIUM_ARGS } from './browser-bundle.js'
import { serveStatic } from './static-server.js'
import { topK, worstExcess } from './packed-int-cases.js'
import { SHAPES, TOKENS, TOPK, type PageResult } from './packed-int-dot-add-page.js'

// scorePackedKeysInt's accumulating path (i32x4.relaxed_dot_i8x16_i7x16_add_s, and int4's raw nibble
// tile: assembly/kernels/packed-int.ts dotGroup) runs only where the engine computes that instruction
// correctly. Node 20's V8 does not (the relaxed build falls back to i16 dots there), so the Node tests in
// test/packed-int.test.ts never reach it; Chromium's V8 does. Here the relaxed build runs in headless
// Chromium on the same grid (int4/2/1; 1, 31, 32, 33, 77, 130 tokens; head dims 40/64/128; 1-7 query
// heads, so blocks of 1-4 heads and a full block plus 1-3), each case against the float64
// dequantize-then-dot twin within the kernel's stated bound, and int4's top-k against the exact kernel's.
// The probe is asserted, not assumed: if Chromium stops taking the path, this fails rather than skips.

let result: PageResult
beforeAll(async () => {
  const { code, errors } = await bundleForBrowser('test/packed-int-dot-add-page.ts')
  expect(errors).toEqual([])
  const server = await serveStatic({ '/build/': 'build' }, { '/cases.js': code, '/index.html': '<!doctype html><title>kvkit</title>' })
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
  try {
    const page = await browser.newPage()
    await page.goto(`${server.url}/index.html`)
    // a string, so that vitest's transform leaves the dynamic import alone
    result = (await page.evaluate(`import('/cases.js').then((m) => m.runCases('/build/kvkit.relaxed.wasm'))`)) as PageResult
  } finally {
    await browser.close()
    await server.close()
  }
}, 120_000)

describe('integer key scoring on the accumulating relaxed dot product, in headless Chromium', () => {
  it('Chromium runs the relaxed build and its probe finds the accumulating dot correct (packedIntDotAdd 0 before the first call, 1 after)', () => {
    expect(result.build).toBe('relaxed')
    expect(result.dotAddBefore).toBe(0)
    expect(result.dotAddAfter).toBe(1)
  })

  const grid = ['int4', 'int2', 'int1'].flatMap((f) => TOKENS.flatMap((n) => SHAPES.map(([d, h]) => [f, n, d, h] as const)))
  it.each(grid)('%s keys: %i tokens of %i channels, %i query heads, within the stated bound of the float64 twin', (format, n, d, qHeads) => {
    const r = result.cases.find((c) => c.format === format && c.n === n && c.d === d && c.qHeads === qHeads)!
    expect(r.out).toHaveLength(qHeads * n)
    expect(r.out.every(Number.isFinite)).toBe(true)
    expect(worstExcess(r)).toBeLessThanOrEqual(0)
  })

  it(`int4 keys, ${TOPK.n} tokens, ${TOPK.qHeads} query heads of ${TOPK.d} channels: the top 8 equal the exact fused kernel's, the top n/8 too except near-ties`, () => {
    const { n, qHeads } = TOPK
    const row = (x: number[], h: number) => x.slice(h * n, h * n + n)
    let swaps = 0
    for (let h = 0; h < qHeads; h++) {
      const [out, exact, bound] = [row(result.topK.out, h), row(result.topK.exact, h), row(result.topK.bound, h)]
      // the leaders stand apart from each other by more than the query's rounding moves them (on this
      // seeded case; 2 of 56 differ on another seed)
      expect([...topK(out, 8)].sort((a, b) => a - b), `head ${h}: top 8`).toEqual([...topK(exact, 8)].sort((a, b) => a - b))
      // deeper, random keys crowd the k-th score: a swap needs two scores the error can reorder,
      // within twice the bound of the k-th (test/packed-int.test.ts's rule on the fixture's keys)
      const k = n / 8
      const kth = [...exact].sort((a, b) => b - a)[k - 1]
      const a = topK(out, k)
      const e = topK(exact, k)
      for (const i of [...a].filter((i) => !e.has(i)).concat([...e].filter((i) => !a.has(i)))) {
        expect(Math.abs(exact[i] - kth), `head ${h}: token ${i}`).toBeLessThanOrEqual(2 * (bound[i] + Math.max(...bound)))
        swaps++
      }
    }
    // 5 of the 7 * 75 top keys trade places with their neighbours (each swap counts its two keys)
    expect(swaps).toBeLessThanOrEqual(0.05 * qHeads * (n / 8))
  })
})

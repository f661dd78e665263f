/**
 * The IndexedDB tier in headless Chromium: the root entry bundled by esbuild, a chunk stored by one
 * connection is read back bit for bit by another after a page reload, and CacheBlend in the page, its
 * chunks in IndexedDB, answers as it does in Node with the in-memory store.
 */
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rootEntryInChromium } from './browser-bundle.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const chunks = [[0, ...words(19, 1)], words(25, 2), words(15, 3)]
const question = words(5, 4)

// a chunk of awkward floats written by one connection, read by another after a reload
const PAGE_WRITE = `async () => {
  const kvkit = await import('/kvkit.js')
  const odd = new Float32Array([-0, 0, 1e-45, -1.17e-38, Infinity, -Infinity, NaN, 3.4e38])
  new Uint32Array(odd.buffer)[6] = 0x7fc01234
  const kv = { ids: [5, 6, 7], k: [odd.slice(0, 6)], v: [odd.slice(2, 8)] }
  const store = await kvkit.IndexedDbChunkStore.open('kvkit-test')
  await store.set('a'.repeat(64), kv)
  store.close()
  return [...kv.k, ...kv.v].map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length)))
}`
const PAGE_READ = `async () => {
  const kvkit = await import('/kvkit.js')
  const store = await kvkit.IndexedDbChunkStore.open('kvkit-test')
  const kv = await store.get('a'.repeat(64))
  const meta = await store.meta('a'.repeat(64))
  const missing = await store.get('b'.repeat(64))
  store.close()
  return { ids: kv.ids, bits: [...kv.k, ...kv.v].map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length))), meta, missing: missing === undefined }
}`
const PAGE_BLEND = `async (input) => {
  const kvkit = await import('/kvkit.js')
  const model = await kvkit.loadModel(new URL('/model/', location.origin), { backend: 'wasm', wasm: { wasm: new URL('/build/kvkit.wasm', location.origin), relaxed: false } })
  const store = await kvkit.IndexedDbChunkStore.open('kvkit-blend')
  const hits = []
  let text = ''
  for (let round = 0; round < 2; round++) {
    const ctx = await new kvkit.CacheBlend(model, { store, ratio: 0.15 }).prepare(input.chunks)
    hits.push(ctx.report.chunkHits)
    text = (await model.generate([...input.chunks.flat(), ...input.question], { reuse: ctx, maxNewTokens: 6 }).result).text
  }
  store.close()
  model.dispose()
  return { hits, text }
}`

let browser: Browser
let server: Awaited<ReturnType<typeof rootEntryInChromium>>
let nodeText: string
beforeAll(async () => {
  server = await rootEntryInChromium()
  browser = server.browser
  const model = (await loadModel('models/fixture-14m', { backend: 'wasm' })) as LlamaModel
  const ctx = await new CacheBlend(model, { ratio: 0.15 }).prepare(chunks)
  nodeText = (await model.generate([...chunks.flat(), ...question], { reuse: ctx, maxNewTokens: 6 }).result).text
  model.dispose()
}, 120_000)
afterAll(async () => {
  await server?.close()
})

describe('IndexedDB tier in headless Chromium', () => {
  it('a chunk written by one connection is read bit for bit by another after a reload, metadata beside it', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/index.html`)
    const written = await page.evaluate(`(${PAGE_WRITE})()`)
    await page.reload()
    const read = (await page.evaluate(`(${PAGE_READ})()`)) as { ids: number[]; bits: number[][]; meta: unknown; missing: boolean }
    expect(read.ids).toEqual([5, 6, 7])
    expect(read.bits).toEqual(written)
    expect(read.meta).toEqual({ tokens: 3, layers: 1, rowFloats: 2, dtype: 'float32' })
    expect(read.missing).toBe(true)
    await context.close()
  }, 60_000)

  it('CacheBlend in the page finds its chunks in IndexedDB the second time and answers as Node does', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}/index.html`)
    const out = await page.evaluate(`(${PAGE_BLEND})(${JSON.stringify({ chunks, question })})`)
    expect(out).toEqual({ hits: [0, 3], text: nodeText })
    await page.close()
  }, 120_000)
})

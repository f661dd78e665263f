/**
 * The OPFS tier in headless Chromium: the root entry bundled by esbuild; a chunk written by one store is
 * read back bit for bit by another after a page reload; a missing chunk is undefined; delete evicts; a
 * byte budget evicts the least recently used; bad keys and options are ReuseErrors; and KVShare in the
 * page, its cached request on OPFS, answers an edited request as it does in Node.
 */
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rootEntryInChromium } from './browser-bundle.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { KVShare } from '../src/reuse/kvshare.js'

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))
const cached = [0, ...words(59, 1)]
const edited = [...cached.slice(0, 25), 3, 4, 5, ...cached.slice(27)]
const question = words(5, 4)
const KEY = (c: string) => c.repeat(64)

// a chunk of awkward floats written by one store, read by another after a reload
const PAGE_WRITE = `async () => {
  const kvkit = await import('/kvkit.js')
  const odd = new Float32Array([-0, 0, 1e-45, -1.17e-38, Infinity, -Infinity, NaN, 3.4e38])
  new Uint32Array(odd.buffer)[6] = 0x7fc01234
  const kv = { ids: [5, 6, 7], k: [odd.slice(0, 6)], v: [odd.slice(2, 8)] }
  const store = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-test' })
  await store.set('${KEY('a')}', kv)
  return [...kv.k, ...kv.v].map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length)))
}`
const PAGE_READ = `async () => {
  const kvkit = await import('/kvkit.js')
  const store = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-test' })
  const keys = store.keys()
  const kv = await store.get('${KEY('a')}')
  const missing = await store.get('${KEY('b')}')
  const deleted = await store.delete('${KEY('a')}')
  const afterDelete = await store.get('${KEY('a')}')
  const deletedAgain = await store.delete('${KEY('a')}')
  return { keys, ids: kv.ids, bits: [...kv.k, ...kv.v].map((x) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length))), missing: missing === undefined, deleted, afterDelete: afterDelete === undefined, deletedAgain }
}`
// three chunks of one size under a budget of two: the least recently used one goes, and stays gone after a reload
const PAGE_BUDGET = `async () => {
  const kvkit = await import('/kvkit.js')
  const chunk = (t) => ({ ids: [t], k: [new Float32Array(64).fill(t)], v: [new Float32Array(64).fill(-t)] })
  const probe = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-budget-probe' })
  await probe.set('${KEY('f')}', chunk(1))
  const one = probe.bytes
  const store = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-budget', maxBytes: 2 * one })
  await store.set('${KEY('a')}', chunk(1))
  await store.set('${KEY('b')}', chunk(2))
  await store.get('${KEY('a')}')
  await store.set('${KEY('c')}', chunk(3))
  const reopened = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-budget' })
  const names = async (k) => (await reopened.get(k))?.ids[0] ?? null
  let tooBig = ''
  try { await (await kvkit.OpfsChunkStore.open({ directory: 'kvkit-budget-small', maxBytes: one - 1 })).set('${KEY('d')}', chunk(4)) } catch (e) { tooBig = e.name }
  return { keys: store.keys(), bytes: store.bytes, one, reopened: [await names('${KEY('a')}'), await names('${KEY('b')}'), await names('${KEY('c')}')], tooBig }
}`
const PAGE_MISUSE = `async () => {
  const kvkit = await import('/kvkit.js')
  const errs = []
  const store = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-test' })
  for (const f of [() => store.get('../x'), () => store.set('A'.repeat(64), { ids: [1], k: [], v: [] }), () => store.delete(''),
    () => kvkit.OpfsChunkStore.open({ directory: 'a/b' }), () => kvkit.OpfsChunkStore.open({ maxBytes: 0 })]) {
    try { await f(); errs.push('no error') } catch (e) { errs.push(e.name + ': ' + e.message) }
  }
  return errs
}`
const PAGE_KVSHARE = `async (input) => {
  const kvkit = await import('/kvkit.js')
  const model = await kvkit.loadModel(new URL('/model/', location.origin), { backend: 'wasm', wasm: { wasm: new URL('/build/kvkit.wasm', location.origin), relaxed: false } })
  const store = await kvkit.OpfsChunkStore.open({ directory: 'kvkit-kvshare' })
  const share = new kvkit.KVShare(model, { store, ratio: 0.15 })
  await share.add(input.cached)
  const ctx = await share.prepare(input.edited)
  const hit = ctx.report.hit
  const text = (await model.generate([...input.edited, ...input.question], { reuse: ctx, maxNewTokens: 6 }).result).text
  model.dispose()
  return { hit, files: store.keys().length, text }
}`

let browser: Browser
let server: Awaited<ReturnType<typeof rootEntryInChromium>>
let nodeText: string
beforeAll(async () => {
  server = await rootEntryInChromium()
  browser = server.browser
  const model = (await loadModel('models/fixture-14m', { backend: 'wasm' })) as LlamaModel
  const share = new KVShare(model, { ratio: 0.15 })
  await share.add(cached)
  const ctx = await share.prepare(edited)
  nodeText = (await model.generate([...edited, ...question], { reuse: ctx, maxNewTokens: 6 }).result).text
  model.dispose()
}, 120_000)
afterAll(async () => {
  await server?.close()
})

describe('OPFS tier in headless Chromium', () => {
  it('a chunk written by one store is read bit for bit by another after a reload; a missing chunk is undefined; delete evicts it', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/index.html`)
    const written = await page.evaluate(`(${PAGE_WRITE})()`)
    await page.reload()
    const read = await page.evaluate(`(${PAGE_READ})()`)
    expect(read).toEqual({ keys: [KEY('a')], ids: [5, 6, 7], bits: written, missing: true, deleted: true, afterDelete: true, deletedAgain: false })
    await context.close()
  }, 60_000)

  it('under maxBytes the least recently used chunk is evicted, and a chunk larger than the budget is refused', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/index.html`)
    const out = (await page.evaluate(`(${PAGE_BUDGET})()`)) as { keys: string[]; bytes: number; one: number; reopened: (number | null)[]; tooBig: string }
    expect(out.keys).toEqual([KEY('a'), KEY('c')])
    expect(out.bytes).toBe(2 * out.one)
    expect(out.reopened).toEqual([1, null, 3])
    expect(out.tooBig).toBe('ReuseError')
    await context.close()
  }, 60_000)

  it('bad keys and options are ReuseErrors naming the value', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/index.html`)
    const errs = (await page.evaluate(`(${PAGE_MISUSE})()`)) as string[]
    expect(errs.map((e) => e.split(':')[0])).toEqual(Array(5).fill('ReuseError'))
    expect(errs[0]).toContain('"../x"')
    expect(errs[3]).toContain('"a/b"')
    expect(errs[4]).toContain('maxBytes must be a whole number > 0, got 0')
    await context.close()
  }, 60_000)

  it('KVShare in the page with its cached request on OPFS answers an edited request as Node does', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(`${server.url}/index.html`)
    const out = await page.evaluate(`(${PAGE_KVSHARE})(${JSON.stringify({ cached, edited, question })})`)
    expect(out).toEqual({ hit: true, files: 1, text: nodeText })
    await context.close()
  }, 120_000)
})

/**
 * kvkit in a browser: the root entry bundled for the web by esbuild, served with the fixture model and
 * the wasm builds from a local static server, run in headless Chromium. In a Web Worker it loads the
 * model by URL (with progress events) and generates with a typed policy on the wasm backend; in the page
 * it loads the model from a map of Blobs. Both must answer the passkey as Node does.
 */
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { bundleForBrowser } from './browser-bundle.js'
import { serveStatic } from './static-server.js'
import { passkeySample } from './fixture-passkey.js'
import { loadModel } from '../src/node/load.js'
import { unionkv } from '../src/policies/factories.js'
import type { TaskSample } from '../src/eval/prompt.js'

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
const FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']

// the worker: everything it does goes through the bundle's public API
// kvkit's recommended method (README, UnionKV): the fixture answers this passkey with it at half the KV bytes
const RECOMMENDED = { budget: 0.5 } as const

const WORKER = `
import { loadModel, unionkv } from '/kvkit.js'
const RECOMMENDED = ${JSON.stringify(RECOMMENDED)}
self.onmessage = async ({ data }) => {
  try {
    const progress = []
    const model = await loadModel(new URL('/model/', location.origin), {
      backend: 'wasm',
      wasm: { wasm: new URL('/build/kvkit.wasm', location.origin), relaxedWasm: new URL('/build/kvkit.relaxed.wasm', location.origin) },
      onProgress: (p) => progress.push(p),
    })
    const gen = model.generate(data.ids, { maxNewTokens: data.maxNewTokens, policy: unionkv(RECOMMENDED) })
    const streamed = []
    for await (const t of gen) streamed.push(t.text)
    const { text, stats } = await gen.result
    self.postMessage({ text, streamed: streamed.join(''), backend: model.backend.name, kv: stats.kvBytes.total, kvFull: stats.kvBytesFull, progress })
    model.dispose()
  } catch (e) {
    self.postMessage({ error: String(e && e.stack || e) })
  }
}
`
// in the page: fetch each file as a Blob (as an <input type=file> would hand them), load from the map.
// A string, so that vitest's transform leaves its dynamic import alone.
const PAGE_BLOBS = `async (input) => {
  const kvkit = await import('/kvkit.js')
  const files = new Map()
  for (const f of input.files) files.set(f, await (await fetch('/model/' + f)).blob())
  const model = await kvkit.loadModel(files, { backend: 'wasm', wasm: { wasm: new URL('/build/kvkit.wasm', location.origin), relaxed: false } })
  const { text } = await model.generate(input.ids, { maxNewTokens: input.maxNewTokens, policy: kvkit.unionkv(input.policy) }).result
  const backend = model.backend.name
  model.dispose()
  return { text, backend }
}`

let browser: Browser
let server: Awaited<ReturnType<typeof serveStatic>>
let sample: TaskSample
let nodeText: string
beforeAll(async () => {
  const { code, errors } = await bundleForBrowser('src/index.ts')
  expect(errors).toEqual([])
  server = await serveStatic({ '/model/': 'models/fixture-14m', '/build/': 'build' }, {
    '/kvkit.js': code, '/worker.js': WORKER, '/index.html': '<!doctype html><title>kvkit</title><p>kvkit browser test</p>',
  })
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
  // Node's answer to compare with: same prompt, same typed policy, wasm backend
  const model = await loadModel('models/fixture-14m', { backend: 'wasm' })
  sample = passkeySample(model)
  nodeText = (await model.generate(sample.promptIds, { maxNewTokens: sample.answerIds.length + 3, policy: unionkv(RECOMMENDED) }).result).text
  model.dispose()
}, 120_000)
afterAll(async () => {
  await browser?.close()
  await server?.close()
})

describe('kvkit in headless Chromium', () => {
  it('a Web Worker loads the model by URL with progress and answers the passkey with a typed policy on wasm', async () => {
    expect(nodeText.startsWith(sample.answer), nodeText).toBe(true)
    const page = await browser.newPage()
    await page.goto(`${server.url}/index.html`)
    const out = await page.evaluate(async (input) => {
      const worker = new Worker('/worker.js', { type: 'module' })
      return await new Promise<Record<string, unknown>>((resolve) => {
        worker.onmessage = (e) => resolve(e.data)
        worker.onerror = (e) => resolve({ error: e.message })
        worker.postMessage(input)
      })
    }, { ids: sample.promptIds, maxNewTokens: sample.answerIds.length + 3 })
    expect(out.error).toBeUndefined()
    expect(out.backend).toBe('wasm')
    expect(out.text).toBe(nodeText)
    expect(out.streamed).toBe(nodeText)
    expect(out.kv as number).toBeLessThan(0.6 * (out.kvFull as number))
    // progress: per file, bytes loaded grow to the file's size
    const progress = out.progress as { file: string; loaded: number; total: number }[]
    for (const f of ['config.json', 'tokenizer.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const events = progress.filter((p) => p.file === f)
      expect(events.length, f).toBeGreaterThan(0)
      expect(events.at(-1)!.loaded).toBe(events.at(-1)!.total)
      for (let i = 1; i < events.length; i++) expect(events[i].loaded).toBeGreaterThanOrEqual(events[i - 1].loaded)
    }
    expect(progress.filter((p) => p.file === 'model-00001-of-00002.safetensors').length).toBeGreaterThan(1)
    await page.close()
  }, 120_000)

  it('the page loads the model from a map of Blobs and gives the same answer', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}/index.html`)
    const input = { ids: sample.promptIds, maxNewTokens: sample.answerIds.length + 3, files: FILES, policy: RECOMMENDED }
    const out = await page.evaluate(`(${PAGE_BLOBS})(${JSON.stringify(input)})`)
    expect(out).toEqual({ text: nodeText, backend: 'wasm' })
    await page.close()
  }, 120_000)

  it('the bundle asked the server for nothing outside it: the model, the wasm builds, the bundle, the worker', () => {
    const outside = server.requests.filter((p) => !/^\/(model\/|build\/|kvkit\.js$|worker\.js$|index\.html$|favicon\.ico$)/.test(p))
    expect(outside).toEqual([])
    expect(server.requests).toContain('/build/kvkit.wasm')
  })
})

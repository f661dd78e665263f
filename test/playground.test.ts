/**
 * The playground page (issue 20) end to end in headless Chromium: `npm run build:playground` (Vite, a
 * couple of seconds), served by `kvkit playground`'s server with the fixture model. The page loads the
 * model by URL with progress, runs its default passkey prompt (about 350 tokens) with two policies
 * (SnapKV, an eviction; Quest, a per-step selection), and must show Node's answers for the same prompt
 * and policies (both right) and, per layer and KV head, the tokens Node's `onKept` reports as kept
 * (SnapKV) or attended (Quest). Run on the wasm backend; in a Chromium with WebGPU on
 * (`--enable-unsafe-webgpu`: its software adapter, SwiftShader, which headless Chromium offers with no
 * other flag) once with `backend: 'auto'`, which must stay on wasm there (a software adapter is slower
 * than the wasm core) and say so, and once with the page's backend control on 'webgpu', where a shorter
 * passkey prompt (168 tokens: SwiftShader is about 30x slower than wasm) must run on the GPU and give
 * Node's wasm greedy tokens, the same right answers and the same heat map; and with 'webgpu' forced where Chromium has no adapter (`--disable-gpu`), where the page must show
 * WebGpuUnavailableError's message at once. Screenshots go to test-results/playground/ (git-ignored).
 */
import { execFile, spawn } from 'node:child_process'
import { request } from 'node:http'
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { servePlayground, type PlaygroundServer } from '../src/node/playground.js'
import { loadModel } from '../src/node/load.js'
import type { TaskSample } from '../src/eval/prompt.js'
import { passkeyPrompt } from '../playground/passkey.js'
import { HAYSTACK_BOOK, haystackText } from '../playground/haystack.js'
import { loadInPage, runInPage, type PageRun } from '../playground/drive.js'
import type { BackendChoice } from '../playground/protocol.js'

const SHOTS = 'test-results/playground'
const PAGE = mkdtempSync(join(tmpdir(), 'kvkit-playground-'))
const BASE_ARGS = ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
// the page's defaults (playground/index.html): passkey, 384 tokens, seed 1, 12 new tokens, these two policies
const POLICIES = ['snapkv:budget=0.5', 'quest:budget=0.25']
const PROBE = { layer: 3, head: 1 }

interface Reference {
  text: string
  /** positions of the probe head with a non-zero share: held at any report (SnapKV) or attended at any step (Quest) */
  shown: number[]
}

/** a passkey prompt the page makes from its length and seed fields, and Node's run of it (wasm) */
interface Case {
  length: number
  seed: number
  sample: TaskSample
  reference: Reference[]
}

let server: PlaygroundServer
/** the page's defaults: 384 tokens asked (354 made), seed 1 */
let byDefault: Case
/**
 * A shorter prompt for SwiftShader (168 tokens: two prefill chunks, not three), whose prefill runs 30x
 * slower than wasm's (BENCHMARKS.md); seed 4 is the first at this length where both policies are right.
 */
let short: Case

beforeAll(async () => {
  // a folder of its own: `npm pack` (test/package-install.test.ts) may be reading dist-playground meanwhile
  await promisify(execFile)(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'playground/vite.config.ts', '--logLevel', 'error', '--outDir', PAGE])
  server = await servePlayground({ page: PAGE, model: 'models/fixture-14m' })
  mkdirSync(SHOTS, { recursive: true })
  // Node's answers and kept / attended positions for the page's prompts
  const model = await loadModel('models/fixture-14m', { backend: 'wasm' })
  const haystack = haystackText(readFileSync(HAYSTACK_BOOK, 'utf8'))
  const nodeCase = async (length: number, seed: number): Promise<Case> => {
    const sample = passkeyPrompt(model.tokenizer, model.config.bosTokenId ?? 0, haystack, length, seed)
    const reference: Reference[] = []
    for (const policy of POLICIES) {
      const shown = new Set<number>()
      const { text } = await model.generate(sample.promptIds, {
        maxNewTokens: 12, policy,
        onKept: (k) => {
          const held = k.kept[PROBE.layer][PROBE.head]
          // a selection's map counts decode steps only, and a head that attended densely, everything held
          const list = !policy.startsWith('quest') ? held : k.stage === 'decode' ? k.attended?.[PROBE.layer][PROBE.head] ?? held : []
          for (const p of list) if (p < sample.promptIds.length) shown.add(p)
        },
      }).result
      reference.push({ text, shown: [...shown].sort((a, b) => a - b) })
    }
    return { length, seed, sample, reference }
  }
  byDefault = await nodeCase(384, 1)
  short = await nodeCase(192, 4)
  model.dispose()
}, 180_000)
afterAll(async () => {
  await server?.close()
  rmSync(PAGE, { recursive: true, force: true })
})

/**
 * Loads the model on `backend` (default: the page's 'auto') and runs both policies with the keyboard
 * only, on the case's prompt (its length and seed typed into the page's fields unless they are the defaults)
 */
async function runPage(page: Page, backend?: BackendChoice, c = byDefault): Promise<PageRun> {
  await loadInPage(page, server.url, backend)
  if (c !== byDefault) {
    await page.fill('#length', String(c.length))
    await page.fill('#seed', String(c.seed))
  }
  const run = await runInPage(page)
  expect(run.answers).toEqual(c.reference.map((r) => r.text))
  return run
}

/** what the page says ran the model: the load line, and beside each column's speed figures */
async function expectRanOn(page: Page, run: PageRun, backend: 'wasm' | 'webgpu'): Promise<void> {
  expect(await page.getAttribute('#load-status', 'data-backend')).toBe(backend)
  expect(run.backends).toEqual([backend, backend])
  for (const i of [0, 1]) expect(await page.textContent(`#ran-on-${i}`)).toMatch(new RegExp(`^Ran on ${backend}\\b`))
}

async function checkResults(page: Page, { sample, reference } = byDefault): Promise<void> {
  expect(await page.textContent('#expected')).toContain(`the passkey is ${sample.expected[0]}`)
  expect(await page.textContent('#expected')).toContain(`${sample.promptIds.length} prompt tokens`)
  for (const i of [0, 1]) {
    expect(reference[i].text).toContain(sample.expected[0])
    expect(await page.textContent(`#answer-${i}`)).toBe(reference[i].text)
    expect(await page.textContent(`#verdict-${i}`)).toBe('✓ right')
    // charts in the report's style: bars for the tiers against full, and for the speeds
    expect(await page.locator(`#charts-${i} svg.bar-chart[data-kind=memory] rect.bar`).count()).toBe(5)
    expect(await page.locator(`#charts-${i} svg.bar-chart[data-kind=speed] rect.bar`).count()).toBe(3)
    // the heat map: a button per (layer, KV head), the first chosen
    const heads = page.locator(`#heat-${i} button.head`)
    expect(await heads.count()).toBe(8 * 2)
    expect(await heads.first().getAttribute('aria-pressed')).toBe('true')
    // choose the probe head with the keyboard: its tokens over the text are Node's
    const probe = page.locator(`#heat-${i} button.head[data-layer="${PROBE.layer}"][data-head="${PROBE.head}"]`)
    await probe.focus()
    await page.keyboard.press('Space')
    expect(await probe.getAttribute('aria-pressed')).toBe('true')
    expect(await page.locator(`#overlay-${i} span.tok`).count()).toBe(sample.promptIds.length)
    const shown = await page.$$eval(`#overlay-${i} span.tok.held`, (s) => s.map((e) => Number((e as HTMLElement).dataset.p)))
    expect(shown).toEqual(reference[i].shown)
    expect(shown.length).toBeLessThan(sample.promptIds.length)
    // the needle is underlined in the text
    expect(await page.locator(`#overlay-${i} span.tok.needle`).count()).toBeGreaterThan(5)
  }
  expect(await page.locator('#heat-0 figcaption').textContent()).toContain('held in the cache')
  expect(await page.locator('#heat-1 figcaption').textContent()).toContain('attended to')
}

describe('the playground page in headless Chromium', () => {
  // one Chromium per set of flags, each test in a page (and browser context) of its own: a launch cost
  // a few seconds on CI, seven of them
  const browsers = new Map<string, Promise<Browser>>()
  const newPage = async (flag: '--disable-gpu' | '--enable-unsafe-webgpu', options?: Parameters<Browser['newPage']>[0]): Promise<Page> => {
    if (!browsers.has(flag)) browsers.set(flag, chromium.launch({ executablePath: '/usr/bin/chromium', args: [...BASE_ARGS, flag] }))
    return (await browsers.get(flag)!).newPage(options)
  }
  afterAll(async () => {
    for (const b of browsers.values()) await (await b).close()
  })

  it('wasm: loads the fixture by URL with progress, answers the passkey with SnapKV and Quest as Node does, and draws what each kept', async () => {
    const page = await newPage('--disable-gpu', { viewport: { width: 1400, height: 900 } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await expectRanOn(page, await runPage(page), 'wasm')
    // the backend control was left at its default
    expect(await page.$eval('#backend', (s) => (s as HTMLSelectElement).value)).toBe('auto')
    expect(await page.textContent('#load-status')).toMatch(/on wasm \(wasm-(relaxed-)?simd\), which 'auto' picked/)
    expect(await page.$eval('#load-progress', (p) => (p as HTMLProgressElement).value)).toBe(1)
    await checkResults(page)
    await page.screenshot({ path: `${SHOTS}/wasm.png`, fullPage: true })
    expect(errors).toEqual([])
    // the page asked for the model's files under /model/ and nothing outside the built folder
    expect(server.requests).toContain('/model/model-00001-of-00002.safetensors')
    await page.close()
  }, 180_000)

  it('a picked folder (the file input): the page loads the model from a map of Blobs and gives the same answers', async () => {
    const page = await newPage('--disable-gpu')
    await page.goto(server.url)
    await page.waitForFunction(() => document.getElementById('backend-line')!.textContent!.startsWith('Worker ready'), null, { timeout: 30_000 })
    const before = server.requests.filter((p) => p.startsWith('/model/')).length
    await page.setInputFiles('#model-files', 'models/fixture-14m')
    expect(await page.isChecked('input[name=source][value=files]')).toBe(true)
    expect(await page.textContent('#picked')).toMatch(/config\.json.*model-00001-of-00002\.safetensors/)
    await page.focus('#load')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => document.getElementById('load-status')!.textContent!.startsWith('Loaded (picked folder)'), null, { timeout: 60_000 })
    expect((await runInPage(page)).answers).toEqual(byDefault.reference.map((r) => r.text))
    // nothing came from the server's model folder this time
    expect(server.requests.filter((p) => p.startsWith('/model/')).length).toBe(before)
    await page.close()
  }, 120_000)

  it('a dropped folder: the files dropped on the drop zone become the picked model', async () => {
    const page = await newPage('--disable-gpu')
    await page.goto(server.url)
    // a drop as a file manager makes it: a DataTransfer holding the folder's files
    await page.evaluate(async (names) => {
      const dt = new DataTransfer()
      for (const n of names) dt.items.add(new File([await (await fetch('./model/' + n)).blob()], n))
      document.getElementById('drop-zone')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }))
    }, ['config.json', 'tokenizer.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
    await page.waitForFunction(() => document.getElementById('picked')!.textContent!.startsWith('5 files'))
    expect(await page.isChecked('input[name=source][value=files]')).toBe(true)
    expect(await page.textContent('#picked')).toContain('model-00002-of-00002.safetensors')
    await page.close()
  }, 60_000)

  it('controls are labelled and reachable: every input has a label, the skip link comes first', async () => {
    const page = await newPage('--disable-gpu')
    await page.goto(server.url)
    const unlabelled = await page.$$eval('input, select, textarea', (els) => els.filter((e) => (e as HTMLInputElement).labels?.length === 0 && !e.getAttribute('aria-label')).map((e) => e.id))
    expect(unlabelled).toEqual([])
    await page.keyboard.press('Tab')
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to the prompt')
    // status lines are live regions for screen readers
    for (const id of ['backend-line', 'load-status', 'run-status']) expect(await page.getAttribute(`#${id}`, 'role'), id).toBe('status')
    await page.close()
  }, 60_000)

  it('WebGPU on (Chromium\'s software adapter): the page finds the adapter, auto still runs on wasm, same answers', async () => {
    const page = await newPage('--enable-unsafe-webgpu', { viewport: { width: 1400, height: 900 } })
    await expectRanOn(page, await runPage(page), 'wasm')
    expect(await page.textContent('#backend-line')).toMatch(/WebGPU: adapter found \(google swiftshader\), a software one: 'auto' runs on wasm/)
    expect(await page.textContent('#backend option[value=auto]')).toMatch(/^auto: wasm here/)
    await checkResults(page)
    await page.screenshot({ path: `${SHOTS}/webgpu-auto.png`, fullPage: true })
    await page.close()
  }, 180_000)

  it('WebGPU forced (backend control on webgpu, SwiftShader): a 168-token passkey prompt runs on the GPU, wasm\'s greedy tokens and answers, the same heat map', async () => {
    const page = await newPage('--enable-unsafe-webgpu', { viewport: { width: 1400, height: 900 } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    // runPage compares the streamed answers with Node's wasm run: wasm's greedy tokens, decoded
    const run = await runPage(page, 'webgpu', short)
    await expectRanOn(page, run, 'webgpu')
    expect(await page.textContent('#load-status')).toMatch(/on webgpu \(webgpu, adapter: google swiftshader\)\.$/)
    expect(await page.textContent('#ran-on-0')).toBe('Ran on webgpu (adapter: google swiftshader).')
    expect(short.sample.promptIds.length).toBe(168)
    await checkResults(page, short)
    await page.screenshot({ path: `${SHOTS}/webgpu.png`, fullPage: true })
    expect(errors).toEqual([])
    await page.close()
  }, 180_000)

  it('WebGPU forced where Chromium has no adapter: the page shows WebGpuUnavailableError\'s message, and wasm then loads', async () => {
    const page = await newPage('--disable-gpu')
    await expect(loadInPage(page, server.url, 'webgpu')).rejects.toThrow(/^the page did not load the model: WebGpuUnavailableError: WebGPU: no adapter/)
    expect(await page.textContent('#backend-line')).toMatch(/WebGPU: no adapter: 'auto' runs on wasm, and 'webgpu' cannot run here/)
    expect(await page.getAttribute('#load-status [role=alert]', 'class')).toBe('error')
    expect(await page.$eval('#load-progress', (p) => (p as HTMLProgressElement).value)).toBe(0)
    expect(await page.isDisabled('#run')).toBe(true)
    expect(await page.isDisabled('#load')).toBe(false)
    await page.screenshot({ path: `${SHOTS}/webgpu-unavailable.png` })
    // the same page, the backend control on wasm: the model loads
    await page.selectOption('#backend', 'wasm')
    await page.focus('#load')
    await page.keyboard.press('Enter')
    await page.waitForFunction(() => document.getElementById('load-status')!.textContent!.startsWith('Loaded'), null, { timeout: 60_000 })
    expect(await page.textContent('#load-status')).toMatch(/on wasm \(wasm-(relaxed-)?simd\)\.$/)
    expect(await page.isDisabled('#run')).toBe(false)
    await page.close()
  }, 90_000)
})

/** GET with the path sent as written (fetch would normalise the dot segments away) */
function rawGet(url: string, path: string): Promise<number> {
  const u = new URL(url)
  return new Promise((res, rej) => request({ host: u.hostname, port: u.port, path }, (r) => {
    r.resume()
    res(r.statusCode ?? 0)
  }).on('error', rej).end())
}

function kvkit(...args: string[]) {
  return spawn(process.execPath, ['bin/kvkit.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
}

describe('kvkit playground (the command)', () => {
  it('serves the built page at / and the model at /model/, nothing outside them; SIGINT stops it with code 0', async () => {
    const child = kvkit('playground', '--port', '0', '--page', PAGE)
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    const url = await new Promise<string>((res, rej) => {
      let out = ''
      child.stdout.on('data', (d) => {
        out += d
        const m = /^kvkit playground: (http:\/\/127\.0\.0\.1:\d+\/) \(model .*fixture-14m\)/.exec(out)
        if (m) res(m[1])
      })
      child.on('exit', (code) => rej(new Error(`exited with ${code}: ${out}`)))
    })
    const index = await fetch(url)
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await index.text()).toContain('<title>kvkit playground')
    const config = await fetch(url + 'model/config.json')
    expect(config.headers.get('content-length')).toBe(String(readFileSync('models/fixture-14m/config.json').length))
    expect((await config.json()).num_hidden_layers).toBe(8)
    for (const path of ['/model/%2e%2e/package.json', '/%2e%2e/package.json', '/model/../../package.json', '/nothing.js']) expect(await rawGet(url, path), path).toBe(404)
    child.kill('SIGINT')
    expect(await exited).toBe(0)
  }, 30_000)

  for (const [what, args, message] of [
    ['a port out of range', ['--port', '70000'], /^kvkit: --port must be at most 65535, got 70000$/],
    ['a port that is no number', ['--port', 'x'], /^kvkit: --port must be a non-negative integer, got "x"$/],
    ['a model folder without config.json', ['--model', 'data'], /^kvkit: .*data.*config\.json/],
    ['a page folder without index.html', ['--page', 'data'], /^kvkit: the playground page is not built in .*data: run `npm run build:playground`$/],
  ] as const) {
    it(`refuses ${what} with one line and exit code 2, before serving`, async () => {
      const child = kvkit('playground', ...args)
      let out = '', err = ''
      child.stdout.on('data', (d) => (out += d))
      child.stderr.on('data', (d) => (err += d))
      expect(await new Promise((r) => child.on('exit', (code) => r(code)))).toBe(2)
      expect(out).toBe('')
      expect(err.trimEnd().split('\n')).toHaveLength(1)
      expect(err.trimEnd()).toMatch(message)
    }, 30_000)
  }
})

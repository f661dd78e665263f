// The playground page on WebGPU against wasm, in one headless Chromium with WebGPU on
// (`--enable-unsafe-webgpu`: headless Chromium's only adapter is SwiftShader, a CPU rasteriser). The page
// loads the served fixture once per backend (the backend control on 'wasm', then on 'webgpu'), runs its
// default passkey prompt (384 tokens asked, 354 made) with its two default policies, the first click
// cold (wasm tiers up, WebGPU compiles its kernels at first use) and RUNS more warm, and reports the
// page's own figures: time to first token and decode ms a token, per policy, and the answers (which
// must be the same on both backends: the runtime's greedy tokens are wasm's).
//   npm run build && npm run build:playground && node dist/bench/playground-webgpu.js [--runs 3]
import { chromium } from 'playwright-core'
import { servePlayground } from '../src/node/playground.js'
import { loadInPage, runInPage, type PageRun } from '../playground/drive.js'

const i = process.argv.indexOf('--runs')
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 3
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const server = await servePlayground({ page: 'dist-playground', model: 'models/fixture-14m' })
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run'] })
const results = new Map<string, { loadMs: number; adapter: string; runs: PageRun[] }>()
for (const backend of ['wasm', 'webgpu'] as const) {
  const page = await browser.newPage()
  const loadMs = await loadInPage(page, server.url, backend)
  const status = (await page.textContent('#load-status')) ?? ''
  const runs: PageRun[] = []
  for (let r = 0; r <= RUNS; r++) runs.push(await runInPage(page))
  if (runs.some((run) => run.backends.some((b) => b !== backend))) throw new Error(`the page ran on ${runs[0].backends} when ${backend} was asked for`)
  results.set(backend, { loadMs, adapter: /adapter: ([^)]*)/.exec(status)?.[1] ?? '', runs })
  await page.close()
}
await browser.close()
await server.close()

const policies = ['snapkv:budget=0.5', 'quest:budget=0.25']
console.log(`Chromium with --enable-unsafe-webgpu; ${RUNS} warm runs after a cold one; WebGPU adapter: ${results.get('webgpu')!.adapter}`)
for (const [backend, r] of results) console.log(`${backend}: page's loadModel ${r.loadMs} ms`)
for (const [p, policy] of policies.entries()) {
  for (const [backend, r] of results) {
    const warm = r.runs.slice(1)
    const ttft = warm.map((run) => run.ttftMs[p]), decode = warm.map((run) => run.decodeMsPerToken[p])
    console.log(`  ${policy} on ${backend}: first token ${median(ttft).toFixed(0)} ms (runs ${ttft.map((x) => x.toFixed(0)).join(' ')}; cold ${r.runs[0].ttftMs[p].toFixed(0)}), ` +
      `decode ${median(decode).toFixed(1)} ms a token (runs ${decode.map((x) => x.toFixed(1)).join(' ')}; cold ${r.runs[0].decodeMsPerToken[p].toFixed(1)}); answer ${JSON.stringify(r.runs[0].answers[p])}`)
  }
  const [w, g] = [results.get('wasm')!, results.get('webgpu')!]
  const ratio = (f: (run: PageRun) => number) => (median(g.runs.slice(1).map(f)) / median(w.runs.slice(1).map(f))).toFixed(1)
  console.log(`  ${policy}: webgpu / wasm: first token ${ratio((run) => run.ttftMs[p])}x, decode ${ratio((run) => run.decodeMsPerToken[p])}x; same answers: ${w.runs.every((run, k) => run.answers[p] === g.runs[k].answers[p])}`)
}

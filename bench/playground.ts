// The playground page (issue 20): its weight and its time to first token on the fixture model.
// Weight: every file of the built folder (dist-playground/, the model excluded: it is served beside
// it), raw and gzipped (zlib level 9), against the fixture model's bytes (what the page downloads next).
// Time to first token: headless Chromium (wasm backend) drives the page by keyboard as a user would:
// open + load the served fixture, then the default passkey prompt (384 tokens) with two policies, the
// first click cold and RUNS more warm; the same prompt and policies in Node (kvkit/node, wasm, one
// thread) in the same process for the ratio, and the full cache in both as the thing the policies replace.
//   npm run build && npm run build:playground && node dist/bench/playground.js [--runs 3]
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { chromium } from 'playwright-core'
import { loadModel } from '../src/node/load.js'
import { servePlayground } from '../src/node/playground.js'
import { HAYSTACK_BOOK, haystackText } from '../playground/haystack.js'
import { passkeyPrompt } from '../playground/passkey.js'
import { loadInPage, runInPage } from '../playground/drive.js'

const i = process.argv.indexOf('--runs')
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 3
const PAGE = 'dist-playground'
const MODEL = 'models/fixture-14m'
const PAIRS: [string, string][] = [['snapkv:budget=0.5', 'quest:budget=0.25'], ['', 'streamingllm:budget=0.5']]
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]))
}

// ---- page weight ---------------------------------------------------------------------------------
const kinds = new Map<string, { raw: number; gz: number; n: number }>()
for (const f of files(PAGE)) {
  const bytes = readFileSync(f)
  const kind = f.endsWith('.wasm') ? 'wasm' : f.endsWith('.js') ? 'js' : f.endsWith('.ts') ? 'ts (unused thread worker)' : 'html/css'
  const k = kinds.get(kind) ?? { raw: 0, gz: 0, n: 0 }
  k.raw += bytes.length
  k.gz += gzipSync(bytes, { level: 9 }).length
  k.n++
  kinds.set(kind, k)
}
const total = [...kinds.values()].reduce((s, k) => ({ raw: s.raw + k.raw, gz: s.gz + k.gz }), { raw: 0, gz: 0 })
const modelBytes = files(MODEL).filter((f) => /\.(json|safetensors)$/.test(f) && !f.endsWith('golden.json')).reduce((s, f) => s + statSync(f).size, 0)
console.log('page weight (dist-playground/, model excluded):')
for (const [kind, k] of kinds) console.log(`  ${kind}: ${k.n} files, ${kib(k.raw)} raw, ${kib(k.gz)} gzip -9`)
console.log(`  total: ${kib(total.raw)} raw, ${kib(total.gz)} gzip -9; the fixture model's files the page loads: ${kib(modelBytes)} (${(modelBytes / total.gz).toFixed(0)}x the gzipped page)`)

// ---- time to first token: page ----------------------------------------------------------------------
const server = await servePlayground({ page: PAGE, model: MODEL })
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] })
const page = await browser.newPage()
const t0 = performance.now()
const loadMs = await loadInPage(page, server.url)
const openToLoaded = performance.now() - t0
const browserTtft = new Map<string, number[]>()
for (let r = 0; r <= RUNS; r++) {
  for (const pair of PAIRS) {
    const run = await runInPage(page, pair)
    pair.forEach((p, k) => browserTtft.set(`${r === 0 ? 'cold ' : ''}${p || 'full'}`, [...(browserTtft.get(`${r === 0 ? 'cold ' : ''}${p || 'full'}`) ?? []), run.ttftMs[k]]))
    if (r === 0) break
  }
}
await browser.close()
await server.close()
console.log(`page: open to model loaded ${openToLoaded.toFixed(0)} ms (the worker's load ${loadMs} ms)`)

// ---- time to first token: Node, same prompt -------------------------------------------------------
const model = await loadModel(MODEL, { backend: 'wasm', threads: 1 })
const sample = passkeyPrompt(model.tokenizer, model.config.bosTokenId ?? 0, haystackText(readFileSync(HAYSTACK_BOOK, 'utf8')), 384, 1)
const nodeTtft = new Map<string, number[]>()
for (let r = 0; r < RUNS; r++) {
  for (const p of PAIRS.flat()) {
    const t = performance.now()
    const g = model.generate(sample.promptIds, { maxNewTokens: 1, policy: p || undefined })
    for await (const _ of g) break
    nodeTtft.set(p || 'full', [...(nodeTtft.get(p || 'full') ?? []), performance.now() - t])
    await g.result
  }
}
model.dispose()
console.log(`time to first token, ${sample.promptIds.length}-token passkey prompt, median of ${RUNS} warm runs (cold: the page's first click):`)
const fullPage = median(browserTtft.get('full')!)
for (const p of PAIRS.flat()) {
  const name = p || 'full'
  const b = median(browserTtft.get(name)!), n = median(nodeTtft.get(name)!)
  const cold = browserTtft.get(`cold ${name}`)
  console.log(`  ${name}: page ${b.toFixed(0)} ms (runs ${browserTtft.get(name)!.map((x) => x.toFixed(0)).join(' ')}${cold ? `; cold ${cold[0].toFixed(0)} ms` : ''}), Node ${n.toFixed(0)} ms, page/Node ${(b / n).toFixed(2)}x, page/full ${(b / fullPage).toFixed(2)}x`)
}

import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderReport, writeReport } from '../src/eval/report.js'
import { formatTable } from '../src/eval/format.js'
import { wilsonInterval, type EvalResult } from '../src/eval/results.js'

const FULL = 4 * 1024 * 1024
function cell(policy: string, task: string, kept: number, accuracy: number): EvalResult {
  return { policy, task, length: 4096, samples: 8, accuracy, accuracyInterval: wilsonInterval(Math.round(accuracy * 8), 8), score: accuracy, kvBytes: kept * FULL, kvBytesFull: FULL, prefillMs: 900 + 100 * kept, decodeMsPerToken: 5 + kept, compressMs: 0, kvDtype: 'float32', question: 'with', newTokens: 8, kernels: 'wasm-relaxed-simd' }
}
const REC = 'window=16,share=model,combine=max,local=0.25,rest=layer,pooling=avg,kernel=9'
const POLICIES: [string, number, number][] = [
  ['full', 1, 1], ['snapkv:budget=0.5', 0.5, 0.75], ['snapkv:budget=0.25', 0.25, 0.5],
  ['streamingllm:budget=0.5', 0.5, 0.375], ['streamingllm:budget=0.25', 0.25, 0.125],
  [`snapkv:budget=0.5,${REC}`, 0.5, 0.875], [`snapkv:budget=0.25,${REC}`, 0.25, 0.625],
]
const RESULTS = ['passkey', 'niah_single', 'vt'].flatMap((task) => POLICIES.map(([p, kept, acc]) => cell(p, task, kept, acc)))

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
let browser: Browser
/** where the browser test leaves its screenshot of the report: KVKIT_SCREENSHOT, or a temp folder */
const screenshotPath = (): string => process.env.KVKIT_SCREENSHOT ?? join(mkdtempSync(join(tmpdir(), 'kvkit-shot-')), 'report.png')

beforeAll(async () => {
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
})
afterAll(async () => {
  await browser?.close()
})

describe('HTML report', () => {
  it('is self-contained: no script, no external resource', () => {
    const html = renderReport(RESULTS, { model: 'models/fixture-14m', seed: 1 })
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org)|src=/i)
  })

  it('names the kernel build the results ran on', () => {
    expect(renderReport(RESULTS, {})).toContain('kernels wasm-relaxed-simd')
  })

  it('draws, in headless Chromium from the file system, one accuracy chart per task with a point per policy and bars per policy', async () => {
    const file = writeReport(mkdtempSync(join(tmpdir(), 'kvkit-report-')), RESULTS, { model: 'fixture', seed: 3, command: 'kvkit eval <x>' })
    const page = await browser.newPage()
    const requests: string[] = []
    page.on('request', (r) => { if (!r.url().startsWith('file:')) requests.push(r.url()) })
    await page.goto(pathToFileURL(file).href)
    expect(await page.locator('svg.accuracy-chart').count()).toBe(3)
    for (const task of ['passkey', 'niah_single', 'vt']) {
      const chart = page.locator(`svg.accuracy-chart[data-task="${task}"]`)
      expect(await chart.locator('circle.point').count()).toBe(7)
      expect(await chart.locator('line.interval').count()).toBe(7)
      // snapkv, its variant and streamingllm each have two settings joined by a line; full stands alone
      expect(await chart.locator('polyline.series').count()).toBe(3)
      // the full cache sits at the right edge and the top: 100% kept, accuracy 1
      const full = chart.locator('circle.point[data-policy="full"]')
      const box = await full.boundingBox()
      const svgBox = (await chart.boundingBox())!
      expect(box!.x + box!.width / 2).toBeGreaterThan(svgBox.x + svgBox.width * 0.9)
      expect(box!.y).toBeLessThan(svgBox.y + svgBox.height * 0.2)
      const quarter = (await chart.locator('circle.point[data-policy="streamingllm:budget=0.25"]').boundingBox())!
      expect(quarter.x).toBeLessThan(box!.x)
      expect(quarter.y).toBeGreaterThan(box!.y)
    }
    for (const kind of ['memory', 'prefill', 'decode']) {
      const bars = page.locator(`svg.bar-chart[data-kind="${kind}"] rect.bar`)
      expect(await bars.count()).toBe(7)
      const widths = await bars.evaluateAll((els) => els.map((e) => (e as SVGRectElement).getBBox().width))
      for (const w of widths) expect(w).toBeGreaterThan(0)
      // full holds the most memory and takes the longest here: its bar is the widest
      expect(Math.max(...widths)).toBe(widths[0])
    }
    expect(await page.locator('table tbody tr').count()).toBe(21)
    // short labels: the table's policy column holds `snapkv B 25%`, the spec is its tooltip and in the legend
    const first = page.locator('table tbody tr td:first-child')
    expect(await first.allTextContents()).toContain('snapkv B 25%')
    expect(await page.locator(`td[title="snapkv:budget=0.25,${REC}"]`).count()).toBe(3)
    expect(await page.locator('dl.legend dt').allTextContents()).toEqual(['snapkv B'])
    expect(await page.locator('dl.legend dd').allTextContents()).toEqual([`snapkv:${REC}`])
    // every cell is one line high: nothing wraps (the memory column used to take five lines)
    const heights = await page.locator('table tbody tr').evaluateAll((rows) => rows.map((r) => r.getBoundingClientRect().height))
    expect(Math.max(...heights)).toBeLessThan(1.6 * Math.min(...heights))
    const policyWidth = (await first.first().boundingBox())!.width
    expect(policyWidth).toBeLessThan(200)
    await page.setViewportSize({ width: 1400, height: 900 })
    await page.screenshot({ path: screenshotPath(), fullPage: true })
    expect(requests).toEqual([])
    await page.close()
  })
})

describe('text table', () => {
  it('has one row per cell with a short label, accuracy and its interval, KV kept and timings; a legend spells out the variants', () => {
    const lines = formatTable(RESULTS.filter((r) => r.task === 'passkey')).split('\n')
    expect(lines).toHaveLength(2 + 7 + 3)
    expect(lines[0]).toMatch(/^policy\s+task\s+length\s+samples\s+accuracy\s+95% CI\s+score\s+KV kept\s+prefill ms\s+decode ms\/tok\s+kernels$/)
    expect(lines[2]).toMatch(/^full\s+passkey\s+4096\s+8\s+1\.00\s+0\.68-1\.00\s+1\.00\s+4\.00 MiB \(100%\)\s+1000\s+6\.0\s+wasm-relaxed-simd$/)
    expect(lines[3]).toMatch(/^snapkv 50%\s+passkey\s+4096\s+8\s+0\.75\s+0\.41-0\.93\s+0\.75\s+2\.00 MiB \(50%\)\s+950\s+5\.5\s+wasm-relaxed-simd$/)
    expect(lines[8]).toMatch(/^snapkv B 25%\s+passkey/)
    expect(lines.slice(-2)).toEqual(['policies:', `  snapkv B = snapkv:${REC}`])
    // no column as wide as the longest spec
    expect(lines[0].indexOf('task')).toBeLessThan(24)
  })
})

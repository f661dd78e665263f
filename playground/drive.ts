/**
 * Drives the playground page from Node with playwright-core, by keyboard only (the way a keyboard user
 * would): shared by the end-to-end test and bench/playground.ts.
 */
import type { Page } from 'playwright-core'
import type { BackendChoice } from './protocol.js'

export interface PageRun {
  answers: string[]
  ttftMs: number[]
  prefillMs: number[]
  decodeMsPerToken: number[]
  /** the backend each column says ran it (model.backend.name) */
  backends: string[]
}

/**
 * Opens the page, waits for its worker, picks the backend (default: the page's, 'auto') and loads the
 * served model; returns the page's load time, ms. A load the page reports as failed (its alert, e.g.
 * WebGpuUnavailableError's message) throws that text at once.
 */
export async function loadInPage(page: Page, url: string, backend?: BackendChoice): Promise<number> {
  await page.goto(url)
  await page.waitForFunction(() => document.getElementById('backend-line')!.textContent!.startsWith('Worker ready'), null, { timeout: 30_000 })
  if (backend) await page.selectOption('#backend', backend)
  await page.focus('#load')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => /^Loaded/.test(document.getElementById('load-status')!.textContent!) || document.querySelector('#load-status [role=alert]'), null, { timeout: 60_000 })
  const status = (await page.textContent('#load-status')) ?? ''
  if (!status.startsWith('Loaded')) throw new Error(`the page did not load the model: ${status}`)
  return Number(await page.getAttribute('#load-status', 'data-load-ms'))
}

/** runs the page's prompt with its two policies (or these), waits for both results */
export async function runInPage(page: Page, policies?: [string, string]): Promise<PageRun> {
  if (policies) for (const i of [0, 1]) await page.fill(`#policy-${i}`, policies[i])
  await page.focus('#run')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => /^Done/.test(document.getElementById('run-status')!.textContent!), null, { timeout: 120_000 })
  const col = (i: number, key: string) => page.getAttribute(`#column-${i}`, `data-${key}`).then(Number)
  return {
    answers: await Promise.all([0, 1].map((i) => page.textContent(`#answer-${i}`).then((t) => t ?? ''))),
    ttftMs: await Promise.all([0, 1].map((i) => col(i, 'ttft-ms'))),
    prefillMs: await Promise.all([0, 1].map((i) => col(i, 'prefill-ms'))),
    decodeMsPerToken: await Promise.all([0, 1].map((i) => col(i, 'decode-ms-per-token'))),
    backends: await Promise.all([0, 1].map((i) => page.getAttribute(`#column-${i}`, 'data-backend').then((b) => b ?? ''))),
  }
}

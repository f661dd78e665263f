/**
 * Drives the playground page from Node with playwright-core, by keyboard only (the way a keyboard user
 * would): shared by the end-to-end test and bench/playground.ts.
 */
import type { Page } from 'playwright-core'

export interface PageRun {
  answers: string[]
  ttftMs: number[]
  prefillMs: number[]
  decodeMsPerToken: number[]
}

/** opens the page, waits for its worker, loads the served model; returns the page's load time, ms */
export async function loadInPage(page: Page, url: string): Promise<number> {
  await page.goto(url)
  await page.waitForFunction(() => document.getElementById('backend-line')!.textContent!.startsWith('Worker ready'), null, { timeout: 30_000 })
  await page.focus('#load')
  await page.keyboard.press('Enter')
  await page.waitForFunction(() => document.getElementById('load-status')!.textContent!.startsWith('Loaded'), null, { timeout: 60_000 })
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
  }
}

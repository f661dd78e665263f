/**
 * The playground page: model choice and load progress, the prompt and two policies, and per policy the
 * streamed answer, KV bytes by tier against the full cache, speed, and the heat map of kept/attended
 * tokens per layer and KV head (a head's button shows its tokens over the text). Charts and style are
 * the eval report's (src/eval/charts.ts). The model runs in worker.ts.
 */
import { barChart, esc, PALETTE, REPORT_CSS } from '../src/eval/charts.js'
import { formatBytes } from '../src/eval/format.js'
import haystack from 'virtual:haystack'
import { heatStrip, overlayTokens } from './view.js'
import type { BackendChoice, FromWorker, PolicyResult, PromptToken, RunRequest, ToWorker } from './protocol.js'
import './style.css'

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T
const style = document.createElement('style')
style.textContent = REPORT_CSS
document.head.prepend(style)

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' })
const send = (m: ToWorker) => worker.postMessage(m)
const NAMES = ['A', 'B']
let picked: Map<string, Blob> | null = null
let prompt: PromptToken[] = []
let loaded = false
let busy = false
/** the backend asked for at the last load ('auto' names what it picked once loaded) */
let asked: BackendChoice = 'auto'

$<HTMLTextAreaElement>('text').value = haystack

// ---- model: served folder, or picked / dropped files -------------------------------------------
function setPicked(files: File[]): void {
  picked = new Map(files.map((f) => [f.name, f as Blob]))
  const total = files.reduce((s, f) => s + f.size, 0)
  $('picked').textContent = files.length ? `${files.length} files, ${formatBytes(total)}: ${files.map((f) => f.name).sort().join(', ')}` : ''
  ;(document.querySelector('input[name=source][value=files]') as HTMLInputElement).checked = true
}
$<HTMLInputElement>('model-files').addEventListener('change', (e) => setPicked([...((e.target as HTMLInputElement).files ?? [])]))

async function entryFiles(entry: FileSystemEntry): Promise<File[]> {
  if (entry.isFile) return [await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej))]
  const reader = (entry as FileSystemDirectoryEntry).createReader()
  const entries = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej))
  return (await Promise.all(entries.map(entryFiles))).flat()
}
const drop = $('drop-zone')
drop.addEventListener('dragover', (e) => {
  e.preventDefault()
  drop.classList.add('over')
})
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', async (e) => {
  e.preventDefault()
  drop.classList.remove('over')
  const entries = [...(e.dataTransfer?.items ?? [])].map((i) => i.webkitGetAsEntry()).filter((x): x is FileSystemEntry => x !== null)
  setPicked(entries.length ? (await Promise.all(entries.map(entryFiles))).flat() : [...(e.dataTransfer?.files ?? [])])
})

$('model-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const source = (document.querySelector('input[name=source]:checked') as HTMLInputElement).value
  if (source === 'files' && !picked?.size) {
    $('load-status').textContent = 'Pick a model folder first.'
    $('model-files').focus()
    return
  }
  loaded = false
  updateRunButton()
  $<HTMLProgressElement>('load-progress').value = 0
  $('load-status').textContent = 'Loading…'
  asked = $<HTMLSelectElement>('backend').value as BackendChoice
  send({ type: 'load', backend: asked, model: source === 'files' ? { kind: 'files', files: picked! } : { kind: 'served', url: new URL('./model/', location.href).href } })
})

// load progress: bytes of every file seen so far against their sizes
const progressBytes = new Map<string, { loaded: number; total: number }>()
function showProgress(file: string, got: number, total: number): void {
  progressBytes.set(file, { loaded: got, total })
  let a = 0, b = 0
  for (const p of progressBytes.values()) {
    a += p.loaded
    b += p.total
  }
  $<HTMLProgressElement>('load-progress').value = b ? a / b : 0
  $('load-status').textContent = `${file}: ${formatBytes(got)} of ${formatBytes(total)} (all files: ${formatBytes(a)} of ${formatBytes(b)})`
}

// ---- running two policies -------------------------------------------------------------------------
function updateRunButton(): void {
  $<HTMLButtonElement>('run').disabled = !loaded || busy
  $<HTMLButtonElement>('load').disabled = busy
}

const num = (id: string) => Number($<HTMLInputElement>(id).value)
$('run-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const run: RunRequest = {
    task: $<HTMLSelectElement>('task').value as RunRequest['task'], text: $<HTMLTextAreaElement>('text').value,
    length: num('length'), seed: num('seed'), maxNewTokens: num('max-new'),
    policies: [0, 1].map((i) => $<HTMLInputElement>(`policy-${i}`).value),
  }
  busy = true
  updateRunButton()
  $('run-status').textContent = 'Running…'
  $('expected').textContent = ''
  run.policies.forEach((p, i) => startColumn(i, p))
  send({ type: 'run', run })
})

function startColumn(i: number, policy: string): void {
  $(`column-${i}`).innerHTML =
    `<h3 id="title-${i}"><span class="swatch" style="background:${PALETTE[i]}"></span>Policy ${NAMES[i]}: <code>${esc(policy.trim() || 'full cache')}</code></h3>` +
    `<p class="answer"><span class="label">Answer</span> <output id="answer-${i}" aria-live="polite"></output> <span id="verdict-${i}" class="verdict"></span></p>` +
    `<div id="charts-${i}" class="charts"></div><div id="heat-${i}"></div>`
}

function showResult(r: PolicyResult): void {
  const i = r.index
  $(`answer-${i}`).textContent = r.text
  // the figures as numbers too, for scripts (bench/playground.ts)
  Object.assign($(`column-${i}`).dataset, { backend: r.backend, ttftMs: r.ttftMs.toFixed(1), prefillMs: r.prefillMs.toFixed(1), decodeMsPerToken: r.decodeMsPerToken.toFixed(2), kvBytes: String(r.kvBytes.total) })
  const verdict = $(`verdict-${i}`)
  verdict.textContent = r.correct === null ? '' : r.correct ? '✓ right' : '✗ wrong'
  verdict.className = `verdict ${r.correct ? 'right' : 'wrong'}`
  const colour = PALETTE[i]
  const kv = r.kvBytes
  const tiers = [
    { name: 'full cache', value: r.kvBytesFull, colour: '#7f7f7f' },
    { name: 'hot (wasm memory)', value: kv.hot, colour },
    { name: 'quantized', value: kv.quantized, colour },
    { name: 'offloaded', value: kv.offloaded, colour },
    { name: 'total', value: kv.total, colour },
  ]
  const memory = barChart('memory', 'KV bytes by tier at the end, against the full cache', tiers.map((t) => ({
    spec: r.policy, label: t.name, value: t.value, colour: t.colour,
    text: `${formatBytes(t.value)}${t.name === 'full cache' ? '' : ` (${Math.round((100 * t.value) / Math.max(1, r.kvBytesFull))}%)`}`,
  })))
  const speed = barChart('speed', 'Speed, ms (time to first token, prefill, decode per token)', [
    { spec: r.policy, label: 'first token', value: r.ttftMs, colour, text: `${r.ttftMs.toFixed(0)} ms` },
    { spec: r.policy, label: 'prefill', value: r.prefillMs, colour, text: `${r.prefillMs.toFixed(0)} ms (${(prompt.length / Math.max(1e-9, r.prefillMs / 1000)).toFixed(0)} tok/s)` },
    { spec: r.policy, label: 'decode / token', value: r.decodeMsPerToken, colour, text: `${r.decodeMsPerToken.toFixed(1)} ms (${(1000 / Math.max(1e-9, r.decodeMsPerToken)).toFixed(0)} tok/s)` },
  ])
  // which backend ran it, right above its speed: a software GPU adapter is slower than the wasm core
  const ranOn = `<p id="ran-on-${i}" class="ran-on">Ran on <strong>${esc(r.backend)}</strong>${r.adapter ? ` (adapter: ${esc(r.adapter)})` : ''}.</p>`
  $(`charts-${i}`).innerHTML = memory + ranOn + speed
  renderHeat(r)
}

function renderHeat(r: PolicyResult): void {
  const i = r.index
  const { heat } = r
  const what = heat.measure === 'kept' ? 'kept' : 'attended'
  const needles = prompt.flatMap((t, p) => (t.needle ? [p] : []))
  const buttons: string[] = []
  for (let l = 0; l < heat.layers; l++) {
    for (let h = 0; h < heat.kvHeads; h++) {
      const row = heat.values.subarray((l * heat.kvHeads + h) * heat.positions, (l * heat.kvHeads + h + 1) * heat.positions).subarray(0, prompt.length)
      const share = row.reduce((s, v) => s + v, 0) / Math.max(1, row.length)
      buttons.push(`<button type="button" class="head" data-layer="${l}" data-head="${h}" aria-pressed="false" aria-controls="overlay-${i}">` +
        `<span class="head-label">layer ${l} · head ${h}: ${Math.round(100 * share)}% ${what}</span>${heatStrip(row, PALETTE[i], needles)}</button>`)
    }
  }
  $(`heat-${i}`).innerHTML =
    `<figure><figcaption id="heat-caption-${i}">Heat map: share of ${heat.measure === 'kept' ? 'steps each prompt token was held in the cache' : 'decode steps each prompt token was attended to'}, per layer and KV head (needle ticks in black). Choose a head to see its tokens over the text.</figcaption>` +
    `<div class="heat" role="group" aria-labelledby="heat-caption-${i}">${buttons.join('')}</div></figure>` +
    `<h4 id="overlay-title-${i}">Tokens of the chosen head</h4><div id="overlay-${i}" class="overlay" aria-labelledby="overlay-title-${i}" tabindex="0"></div>`
  const group = $(`heat-${i}`)
  group.querySelectorAll<HTMLButtonElement>('button.head').forEach((b) => b.addEventListener('click', () => chooseHead(r, b)))
  chooseHead(r, group.querySelector('button.head')!)
}

function chooseHead(r: PolicyResult, button: HTMLButtonElement): void {
  const i = r.index
  const { heat } = r
  const l = Number(button.dataset.layer), h = Number(button.dataset.head)
  $(`heat-${i}`).querySelectorAll('button.head').forEach((b) => b.setAttribute('aria-pressed', String(b === button)))
  const row = heat.values.subarray((l * heat.kvHeads + h) * heat.positions, (l * heat.kvHeads + h + 1) * heat.positions)
  const shown = row.subarray(0, prompt.length).reduce((s, v) => s + (v > 0 ? 1 : 0), 0)
  $(`overlay-title-${i}`).textContent = `Layer ${l}, KV head ${h}: ${shown} of ${prompt.length} prompt tokens ${heat.measure} (shade: share of steps)`
  $(`overlay-${i}`).innerHTML = overlayTokens(prompt, row, PALETTE[i], heat.measure)
}

worker.onmessage = ({ data }: MessageEvent<FromWorker>) => {
  switch (data.type) {
    case 'ready':
      $('policy-names').innerHTML = data.policies.map((p) => `<option value="${esc(p.name)}">${esc(p.description)}</option>`).join('')
      $('backend-line').textContent = `Worker ready. WebGPU: ${!data.webgpu ? "no adapter: 'auto' runs on wasm, and 'webgpu' cannot run here"
        : data.hardware ? `adapter found (${data.webgpu}), a hardware GPU: 'auto' runs on it`
        : `adapter found (${data.webgpu}), a software one: 'auto' runs on wasm (faster here); choose 'webgpu' to run on it`}.`
      autoOption().textContent = `auto: ${data.webgpu && data.hardware ? 'webgpu' : 'wasm'} here (WebGPU on a hardware GPU, else wasm)`
      break
    case 'progress':
      showProgress(data.progress.file, data.progress.loaded, data.progress.total)
      break
    case 'loaded':
      loaded = true
      progressBytes.clear()
      $<HTMLProgressElement>('load-progress').value = 1
      $('load-status').dataset.loadMs = data.loadMs.toFixed(0)
      $('load-status').textContent = `Loaded (${data.model}) in ${(data.loadMs / 1000).toFixed(1)} s: ${data.layers} layers x ${data.kvHeads} KV heads on ${data.backend} (${data.kernels}${data.adapter ? `, adapter: ${data.adapter}` : ''})${asked === 'auto' ? `, which 'auto' picked` : ''}.`
      $('load-status').dataset.backend = data.backend
      updateRunButton()
      break
    case 'prompt':
      prompt = data.tokens
      $('expected').textContent = data.expected ? `${prompt.length} prompt tokens; the passkey is ${data.expected}.` : `${prompt.length} prompt tokens.`
      break
    case 'token':
      $(`answer-${data.index}`).textContent += data.text
      break
    case 'result':
      showResult(data.result)
      if (data.result.index === 1) finishRun('Done.')
      break
    case 'error':
      if (data.index !== undefined) {
        $(`verdict-${data.index}`).textContent = ''
        $(`answer-${data.index}`).innerHTML = `<span role="alert" class="error">${esc(data.name)}: ${esc(data.message)}</span>`
        if (data.index === 1) finishRun('Done, with an error.')
      } else {
        if (!busy) {
          // a failed load (no GPU adapter, a bad file): no half-full bar left beside the message
          progressBytes.clear()
          $<HTMLProgressElement>('load-progress').value = 0
        }
        $(busy ? 'run-status' : 'load-status').innerHTML = `<span role="alert" class="error">${esc(data.name)}: ${esc(data.message)}</span>`
        finishRun(null)
      }
      break
  }
}

const autoOption = () => document.querySelector<HTMLOptionElement>('#backend option[value=auto]')!

function finishRun(status: string | null): void {
  busy = false
  updateRunButton()
  if (status) $('run-status').textContent = status
}

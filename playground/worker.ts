/**
 * The playground's model worker: loads the model (from the server's ./model/ folder by URL, or from
 * picked files), builds the prompt, and runs `generate` for each policy, streaming tokens and the
 * heat map of what the policy kept back to the page. Only the root `kvkit` entry (browser-safe) is used.
 */
import { listPolicies, loadModel, type LlamaModel } from '../src/index.js'
import { passkeyPrompt } from './passkey.js'
import wasmUrl from '../build/kvkit.wasm?url'
import relaxedWasmUrl from '../build/kvkit.relaxed.wasm?url'
import { HeatAccumulator } from './heat.js'
import type { FromWorker, ModelChoice, PolicyResult, RunRequest, ToWorker } from './protocol.js'

const post = (m: FromWorker) => (self as unknown as Worker).postMessage(m)
let model: LlamaModel | null = null

async function webgpuAdapter(): Promise<string | null> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu
  if (!gpu) return null
  try {
    const adapter = await gpu.requestAdapter()
    if (!adapter) return null
    const info = adapter.info
    return [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'adapter'
  } catch {
    return null
  }
}

async function load(choice: ModelChoice): Promise<void> {
  model?.dispose()
  model = null
  const t0 = performance.now()
  const source = choice.kind === 'served' ? new URL(choice.url) : choice.files
  model = await loadModel(source, {
    // WebGPU on a hardware adapter, wasm elsewhere (a software adapter is slower than the wasm core)
    backend: 'auto',
    wasm: { wasm: new URL(wasmUrl, location.href), relaxedWasm: new URL(relaxedWasmUrl, location.href) },
    onProgress: (progress) => post({ type: 'progress', progress }),
  })
  const name = choice.kind === 'served' ? 'served ./model/' : [...choice.files.keys()].find((f) => f === 'config.json') ? 'picked folder' : 'picked files'
  post({ type: 'loaded', backend: model.backend.name, kernels: model.kernels, loadMs: performance.now() - t0, layers: model.config.layers, kvHeads: model.config.kvHeads, model: name })
}

async function run(r: RunRequest): Promise<void> {
  const m = model
  if (!m) throw new Error('load a model first')
  const sample = r.task === 'passkey' ? passkeyPrompt(m.tokenizer, m.config.bosTokenId ?? m.config.eosTokenIds[0], r.text, r.length, r.seed) : null
  const ids = sample ? sample.promptIds : m.tokenizer.encode(r.text)
  if (ids.length < 2) throw new Error('the prompt needs at least two tokens')
  const tokens = sample
    ? sample.pieces.flatMap((p) => p.ids.map((id) => ({ text: m.tokenizer.decode([id]), needle: p.kind === 'needle' })))
    : ids.map((id) => ({ text: m.tokenizer.decode([id]), needle: false }))
  post({ type: 'prompt', tokens, expected: sample?.expected[0] ?? null })
  for (const [index, policy] of r.policies.entries()) {
    try {
      const heat = new HeatAccumulator(m.config.layers, m.config.kvHeads, ids.length - 1 + r.maxNewTokens)
      const t0 = performance.now()
      let ttftMs = NaN
      const gen = m.generate(ids, { maxNewTokens: r.maxNewTokens, policy: policy.trim() || undefined, onKept: (k) => heat.add(k) })
      for await (const t of gen) {
        if (Number.isNaN(ttftMs)) ttftMs = performance.now() - t0
        post({ type: 'token', index, text: t.text })
      }
      const { text, stats } = await gen.result
      const result: PolicyResult = {
        index, policy, text, correct: sample ? text.includes(sample.expected[0]) : null, ttftMs,
        prefillMs: stats.prefillMs, decodeMsPerToken: stats.decodeMsPerToken, kvBytes: stats.kvBytes, kvBytesFull: stats.kvBytesFull, heat: heat.result(),
      }
      post({ type: 'result', result })
    } catch (e) {
      post({ type: 'error', index, message: (e as Error).message })
    }
  }
}

self.onmessage = async ({ data }: MessageEvent<ToWorker>) => {
  try {
    if (data.type === 'load') await load(data.model)
    else await run(data.run)
  } catch (e) {
    post({ type: 'error', message: (e as Error).message })
  }
}

post({ type: 'ready', policies: listPolicies().map(({ name, description }) => ({ name, description })), webgpu: await webgpuAdapter() })

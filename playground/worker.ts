/**
 * The playground's model worker: loads the model (from the server's ./model/ folder by URL, or from
 * picked files), builds the prompt, and runs `generate` for each policy, streaming tokens and the
 * heat map of what the policy kept back to the page. Only the root `kvkit` entry (browser-safe) is used.
 */
import { hasHardwareAdapter, listPolicies, loadModel, type LlamaModel } from '../src/index.js'
import { passkeyPrompt } from './passkey.js'
import wasmUrl from '../build/kvkit.wasm?url'
import relaxedWasmUrl from '../build/kvkit.relaxed.wasm?url'
import { HeatAccumulator } from './heat.js'
import { BACKEND_CHOICES, type BackendChoice, type FromWorker, type ModelChoice, type PolicyResult, type RunRequest, type ToWorker } from './protocol.js'

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

async function load(choice: ModelChoice, backend: BackendChoice): Promise<void> {
  // a message from elsewhere than main.ts: refused by name, before the old model is dropped
  if (!BACKEND_CHOICES.includes(backend)) throw new RangeError(`backend must be one of ${BACKEND_CHOICES.join(', ')}, got ${JSON.stringify(backend)}`)
  model?.dispose()
  model = null
  const t0 = performance.now()
  const source = choice.kind === 'served' ? new URL(choice.url) : choice.files
  model = await loadModel(source, {
    // 'auto': WebGPU on a hardware adapter, wasm elsewhere (a software adapter is slower than the wasm
    // core); 'webgpu' forced runs on any adapter, and throws WebGpuUnavailableError where there is none
    backend,
    wasm: { wasm: new URL(wasmUrl, location.href), relaxedWasm: new URL(relaxedWasmUrl, location.href) },
    onProgress: (progress) => post({ type: 'progress', progress }),
  })
  const name = choice.kind === 'served' ? 'served ./model/' : [...choice.files.keys()].find((f) => f === 'config.json') ? 'picked folder' : 'picked files'
  post({ type: 'loaded', backend: model.backend.name, adapter: adapterOf(model), kernels: model.kernels, loadMs: performance.now() - t0, layers: model.config.layers, kvHeads: model.config.kvHeads, model: name })
}

/** the GPU adapter a webgpu model runs on ('' for wasm) */
function adapterOf(m: LlamaModel): string {
  const b = m.backend as { device?: { adapterName?: string } }
  return b.device?.adapterName ?? ''
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
        backend: m.backend.name, adapter: adapterOf(m),
      }
      post({ type: 'result', result })
    } catch (e) {
      post({ type: 'error', index, ...describe(e) })
    }
  }
}

/** an error's class and message for the page (WebGpuUnavailableError says why there is no device) */
function describe(e: unknown): { name: string; message: string } {
  return e instanceof Error ? { name: e.name, message: e.message } : { name: 'Error', message: String(e) }
}

self.onmessage = async ({ data }: MessageEvent<ToWorker>) => {
  try {
    if (data.type === 'load') await load(data.model, data.backend)
    else await run(data.run)
  } catch (e) {
    post({ type: 'error', ...describe(e) })
  }
}

const [webgpu, hardware] = await Promise.all([webgpuAdapter(), hasHardwareAdapter()])
post({ type: 'ready', policies: listPolicies().map(({ name, description }) => ({ name, description })), webgpu, hardware })

import { afterAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import type { WebGpuBackend } from '../src/backend/webgpu/index.js'
import type { LlamaModel } from '../src/model/model.js'
import type { KVDtype } from '../src/cache/formats.js'
import type { KeptTokens } from '../src/model/types.js'
import { loadModel } from '../src/node/index.js'
import { testGpu } from './webgpu-helpers.js'

// The Llama runtime over a float16 cache on the WebGPU backend (lavapipe), its cache half wholly on the
// GPU (rows appended as halves by wgsl/append_f16.wgsl, attention reading them through wgsl/kv.f16.wgsl),
// with shader-f16 and without it, against the same model's float16 run on the wasm core: the logits of
// every step within rounding of the largest (see below), the same greedy tokens and kept tokens, over a
// prompt of several prefill chunks, and the steps a float32 cache runs on the GPU run there too.
const probe = await testGpu()
const paths = probe ? [true, false].filter((f16) => !f16 || probe.shaderF16) : []
probe?.destroy()
const MODEL = 'models/fixture-14m'
const CHUNK = 16
const NEW = 3

let wasm: LlamaModel
const gpus: { shaderF16: boolean; backend: WebGpuBackend; model: LlamaModel }[] = []
if (probe) {
  wasm = await loadModel(MODEL, { backend: 'wasm', chunk: CHUNK, kvDtype: 'float16' })
  for (const shaderF16 of paths) {
    const backend = await createBackend('webgpu', { gpu: { shaderF16 } })
    gpus.push({ shaderF16, backend, model: await loadModel(MODEL, { backendInstance: backend, chunk: CHUNK, kvDtype: 'float16' }) })
  }
}
afterAll(() => {
  for (const g of gpus) {
    g.model.dispose()
    g.backend.destroy()
  }
  wasm?.dispose()
})

const prompt = (n: number) => wasm.tokenizer.encode('The pass key is 71432. Remember it. The grass is green and the sky is blue. '.repeat(8)).slice(0, n)

async function run(m: LlamaModel, ids: number[], policy: string | undefined, kvDtype: KVDtype = 'float16'): Promise<{ ids: number[]; kept: KeptTokens[]; logits: Float32Array[] }> {
  const kept: KeptTokens[] = []
  const logits: Float32Array[] = []
  const r = await m.generate(ids, { maxNewTokens: NEW, policy, kvDtype, onKept: (k) => kept.push(k), onLogits: (l) => logits.push(l.slice()) }).result
  return { ids: r.ids, kept, logits }
}

describe.skipIf(!probe).each(gpus.map((g) => ({ shaderF16: g.shaderF16, g })))('a float16 cache on WebGPU (shader-f16: $shaderF16)', ({ g }) => {
  it.each([['full', undefined], ['unionkv:budget=0.25', 'unionkv:budget=0.25'], ['tokenselect (selected on the GPU)', 'tokenselect:tokens=8,first=2,last=2']])('%s: every step on the GPU, the logits, tokens and kept tokens of wasm\'s float16 run', async (_, policy) => {
    const ids = prompt(2 * CHUNK + 5) // two whole chunks and a partial one
    const gpu = g.model.gpu!
    // the steps a float32 cache runs on the GPU and with its cache half on the CPU (UnionKV's observation
    // window hands the CPU its prefill's last chunk), then the float16 run: the same counts
    const s0 = { ...gpu.steps }
    await run(g.model, ids, policy, 'float32')
    const s1 = { ...gpu.steps }
    const [a, b] = [await run(wasm, ids, policy), await run(g.model, ids, policy)]
    expect(gpu.steps.gpu - s1.gpu).toBe(s1.gpu - s0.gpu)
    expect(gpu.steps.cpuAttention - s1.cpuAttention).toBe(s1.cpuAttention - s0.cpuAttention)
    // full and TokenSelect: three prefill chunks and every decode step wholly on the GPU
    if (!policy?.startsWith('unionkv')) expect([gpu.steps.gpu - s1.gpu, gpu.steps.cpuAttention - s1.cpuAttention]).toEqual([3 + NEW, 0])
    expect(b.ids).toEqual(a.ids)
    expect(b.kept).toEqual(a.kept)
    expect(b.logits.length).toBe(a.logits.length)
    a.logits.forEach((want, step) => {
      let max = 0
      let worst = 0
      for (let i = 0; i < want.length; i++) {
        max = Math.max(max, Math.abs(want[i]))
        worst = Math.max(worst, Math.abs(b.logits[step][i] - want[i]))
      }
      // float rounding as in runtime-webgpu.test.ts (1e-4), and one more source: the GPU's projections
      // differ from wasm's in the last float32 bits, which can move a stored half by one unit (2^-11 of
      // it) where a value lies next to a rounding boundary; bounded by one such unit of the largest logit
      expect(worst / max, `step ${step}`).toBeLessThan(2 ** -11)
    })
  })
})

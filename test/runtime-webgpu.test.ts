import { afterAll, describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import type { WebGpuBackend } from '../src/backend/webgpu/index.js'
import type { LlamaModel } from '../src/model/model.js'
import type { GenerateOptions, KeptTokens } from '../src/model/types.js'
import { loadModel } from '../src/node/index.js'
import { resolvePolicy } from '../src/policies/config.js'
import { randomGatesFile, specsPerPolicy } from './policy-grid-helpers.js'
import { testGpu } from './webgpu-helpers.js'

// The Llama runtime on the WebGPU backend (lavapipe on CI) against the same model on the wasm core:
// the same greedy tokens and the same kept tokens for every registered policy, logits within float
// rounding, no GPU buffer made in a warm decode loop, concurrent requests kept apart.
const probe = await testGpu()
probe?.destroy()
const MODEL = 'models/fixture-14m'
const CHUNK = 16
const NEW = 2

let wasm: LlamaModel
let gpu: LlamaModel
let backend: WebGpuBackend
if (probe) {
  wasm = await loadModel(MODEL, { backend: 'wasm', chunk: CHUNK })
  backend = await createBackend('webgpu')
  gpu = await loadModel(MODEL, { backendInstance: backend, chunk: CHUNK })
}
afterAll(() => {
  gpu?.dispose()
  wasm?.dispose()
  backend?.destroy()
})

const prompt = (n: number) => wasm.tokenizer.encode('The pass key is 71432. Remember it. The grass is green and the sky is blue. '.repeat(8)).slice(0, n)

async function run(m: LlamaModel, ids: number[], o: GenerateOptions): Promise<{ ids: number[]; kept: KeptTokens[]; policy?: Record<string, number> }> {
  const kept: KeptTokens[] = []
  const r = await m.generate(ids, { maxNewTokens: NEW, onKept: (k) => kept.push(k), ...o }).result
  return { ids: r.ids, kept, policy: r.stats.policy }
}

describe.skipIf(!probe)('the Llama runtime on WebGPU', () => {
  it('gives the logits of the wasm runtime within float rounding, prefill chunk and decode step', async () => {
    const ids = prompt(2 * CHUNK + 3)
    const V = gpu.config.vocab
    const want = wasm.logits(ids)
    const cache = gpu.newCache()
    const got = new Float32Array(ids.length * V)
    try {
      for (let s = 0; s < ids.length; s += CHUNK) {
        const T = Math.min(CHUNK, ids.length - s)
        await gpu.gpu!.step(ids.slice(s, s + T), Int32Array.from({ length: T }, (_, t) => s + t), cache, { logits: 'all', out: got, outOffset: s * V })
      }
    } finally {
      cache.dispose()
    }
    let max = 0
    for (const v of want) max = Math.max(max, Math.abs(v))
    let worst = 0
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]))
    expect(worst / max).toBeLessThan(1e-4)
  })

  it.each([
    ['full', {}],
    ['unionkv (observation window on the CPU, decode on the GPU)', { policy: 'unionkv' }],
    ['h2o (attention-mass hooks every chunk)', { policy: 'h2o' }],
    ['tokenselect (selection every decode step)', { policy: 'tokenselect:tokens=8,first=2,last=2' }],
    ['shadowkv (pre-RoPE keys)', { policy: 'shadowkv:chunk=2,outliers=1,sink=1,local=2,rank=4' }],
    ['kivi (packed pages)', { policy: 'kivi:residual=2' }],
    ['float16 pages', { kvDtype: 'float16' }],
  ] as [string, GenerateOptions][])('prefills and decodes %s with the tokens and kept tokens of wasm', async (_, o) => {
    // one token past a chunk, and a prompt of several chunks whose last is partial
    for (const n of o.policy === undefined || o.policy === 'unionkv' ? [CHUNK + 1, 2 * CHUNK + 5] : [2 * CHUNK + 5]) {
      const ids = prompt(n)
      const [a, b] = [await run(wasm, ids, o), await run(gpu, ids, o)]
      expect(b.ids, `prompt of ${n}`).toEqual(a.ids)
      expect(b.kept, `prompt of ${n}`).toEqual(a.kept)
    }
  })

  it('runs a plain cache and TokenSelect wholly on the GPU and another selecting policy with its cache half on the CPU', async () => {
    const ids = prompt(CHUNK + 4)
    for (const policy of [undefined, 'tokenselect:tokens=8,first=2,last=2']) {
      const s0 = { ...gpu.gpu!.steps }
      await run(gpu, ids, { policy })
      expect(gpu.gpu!.steps.gpu - s0.gpu, policy).toBe(2 + NEW)
      expect(gpu.gpu!.steps.cpuAttention, policy).toBe(s0.cpuAttention)
    }
    const s1 = { ...gpu.gpu!.steps }
    await run(gpu, ids, { policy: 'quest:tokens=8,page=2' })
    expect(gpu.gpu!.steps.cpuAttention - s1.cpuAttention).toBe(NEW)
  })

  it.each([
    'tokenselect:tokens=8,first=2,last=2',
    'tokenselect:tokens=11,first=1,last=3,cache=false',
    'tokenselect:tokens=10,first=3,last=0,vote=head,threshold=0.5',
    'tokenselect:tokens=5,first=2,last=3',
    'tokenselect:tokens=8,first=2,last=2,dense=1',
  ])('selects on the GPU what wasm selects: %s (tokens, attended sets, Selection Cache counts)', async (policy) => {
    // past the budget from the first decode step, the prompt over several chunks, enough steps for cache hits
    const ids = prompt(2 * CHUNK + 3)
    const s0 = gpu.gpu!.steps.cpuAttention
    const [a, b] = [await run(wasm, ids, { policy, maxNewTokens: 5 }), await run(gpu, ids, { policy, maxNewTokens: 5 })]
    expect(gpu.gpu!.steps.cpuAttention).toBe(s0)
    expect(b.ids).toEqual(a.ids)
    expect(b.kept).toEqual(a.kept)
    // the first selecting layer (after `dense` dense ones) attends `tokens` slots
    const dense = Number(/dense=(\d+)/.exec(policy)?.[1] ?? 0)
    expect(b.kept.at(-1)!.attended![dense][0]!.length).toBe(Number(/tokens=(\d+)/.exec(policy)![1]))
    expect(b.policy).toEqual(a.policy)
  })

  it('takes the decisions of wasm for every registered policy from one shared prefill', async () => {
    const ids = prompt(2 * CHUNK + 7)
    const specs = [...specsPerPolicy(randomGatesFile({ ...gpu.config })).values()].map((s) => s[0])
    const byKeys = new Map<string, string[]>()
    for (const s of specs) {
      const k = resolvePolicy(s, gpu.config)?.needs.cacheKeys ?? 'post-rope'
      byKeys.set(k, [...(byKeys.get(k) ?? []), s])
    }
    for (const group of byKeys.values()) {
      const [pa, pb] = [await wasm.prefillPrompt(ids, group), await gpu.prefillPrompt(ids, group)]
      for (const policy of group) {
        const [a, b] = [await run(wasm, ids, { policy, prefill: pa }), await run(gpu, ids, { policy, prefill: pb })]
        expect(b.ids, policy).toEqual(a.ids)
        expect(b.kept, policy).toEqual(a.kept)
      }
    }
  })

  it.each([[undefined], ['tokenselect:tokens=8,first=2,last=2']])('makes no GPU buffer in a warm decode loop (policy %s)', async (policy) => {
    const ids = prompt(CHUNK + 2)
    await run(gpu, ids, { maxNewTokens: 6, policy })
    const device = backend.device.device
    const create = device.createBuffer.bind(device)
    let made = 0
    device.createBuffer = (d) => {
      made++
      return create(d)
    }
    try {
      await run(gpu, ids, { maxNewTokens: 6, policy })
    } finally {
      device.createBuffer = create
    }
    expect(made).toBe(0)
  })

  it('sends a decode step with TokenSelect as one batch of kernels and one readback', async () => {
    const policy = 'tokenselect:tokens=8,first=2,last=2'
    // two more decode steps cost two more kernel submissions and two more readback copies, whatever the prefill sent
    const ids = prompt(CHUNK + 2)
    const queue = backend.device.device.queue
    const submit = queue.submit.bind(queue)
    let sent = 0
    queue.submit = (b) => {
      sent++
      return submit(b)
    }
    const count = async (steps: number) => {
      sent = 0
      await run(gpu, ids, { maxNewTokens: steps, policy })
      return sent
    }
    try {
      await count(1)
      expect((await count(4)) - (await count(2))).toBe(2 * 2)
    } finally {
      queue.submit = submit
    }
  })

  it('keeps concurrent requests of one model apart', async () => {
    const a = prompt(CHUNK + 3)
    const b = prompt(CHUNK + 6).reverse()
    const alone = [await run(gpu, a, {}), await run(gpu, b, { policy: 'unionkv' })]
    const together = await Promise.all([run(gpu, a, {}), run(gpu, b, { policy: 'unionkv' })])
    expect(together.map((r) => r.ids)).toEqual(alone.map((r) => r.ids))
  })
})

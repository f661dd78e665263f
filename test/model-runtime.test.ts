import { halfToFloat } from '../src/backend/half.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { parseConfig, ropeInvFreq } from '../src/model/config.js'
import type { Policy, PolicyContext } from '../src/policies/types.js'
import type { Decision } from '../src/cache/types.js'

const DIR = 'models/fixture-14m'
let model: LlamaModel
let prompt: number[]
beforeAll(async () => {
  model = await loadModel(DIR, { backend: 'wasm' })
  const text = readFileSync('data/books/pg128.txt', 'utf8').slice(20000, 22000).replace(/\s+/g, ' ')
  prompt = [0, ...model.tokenizer.encode(text)].slice(0, 160)
})
afterAll(() => model?.dispose())

async function greedy(ids: number[], extra: Parameters<LlamaModel['generate']>[1] = {}) {
  return model.generate(ids, { maxNewTokens: 8, ...extra }).result
}

describe('bad input to a loaded model', () => {
  it('token ids out of range or not integers name the bad value', async () => {
    expect(() => model.logits([0, 4096])).toThrow(/ids\[1\] = 4096 is not a token id in \[0, 4096\)/)
    expect(() => model.logits([0, -1])).toThrow(ModelInputError)
    expect(() => model.logits([1.5])).toThrow(/1.5/)
    expect(() => model.logits([])).toThrow(/empty/)
    expect(() => model.generate([5, 99999])).toThrow(/prompt\[1\] = 99999/)
  })
  it('generation options out of range are refused before any work', () => {
    expect(() => model.generate([0, 1], { temperature: -1 })).toThrow(/temperature/)
    expect(() => model.generate([0, 1], { topP: 0 })).toThrow(/topP/)
    expect(() => model.generate([0, 1], { maxNewTokens: 0 })).toThrow(/maxNewTokens/)
    expect(() => model.generate([0, 1], { stop: [''] })).toThrow(/stop/)
  })
})

describe('forward pass variants agree', () => {
  it('a cache that keeps keys before RoPE gives the same logits as one that keeps them after', () => {
    const V = model.config.vocab
    const a = new Float32Array(prompt.length * V)
    const b = new Float32Array(prompt.length * V)
    const post = model.newCache('post-rope')
    const pre = model.newCache('pre-rope')
    model.prefill(prompt, post, 0, undefined, a)
    model.prefill(prompt, pre, 0, undefined, b)
    let worst = 0
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
    expect(worst).toBeLessThan(1e-3)
    post.dispose()
    pre.dispose()
  })

  it('chunked prefill then decode equals one logits() pass (decode reads the cache correctly)', async () => {
    const V = model.config.vocab
    const full = model.logits(prompt)
    const r = await greedy(prompt.slice(0, 100), { maxNewTokens: 1 })
    let best = 0
    const row = full.subarray(99 * V, 100 * V)
    for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i
    expect(r.ids[0] ?? model.config.eosTokenIds[0]).toBe(best)
  })
})

describe('weights in float32 and bfloat16, single file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvkit-w-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  function convert(dtype: 'F32' | 'BF16'): string {
    const out = join(dir, dtype)
    mkdirSync(out, { recursive: true })
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) copyFileSync(join(DIR, f), join(out, f))
    const header: Record<string, unknown> = {}
    const chunks: Buffer[] = []
    let offset = 0
    for (const shard of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const buf = readFileSync(join(DIR, shard))
      const n = Number(buf.readBigUInt64LE(0))
      const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
      for (const [name, e] of Object.entries(h as Record<string, { shape: number[]; data_offsets: [number, number] }>)) {
        if (name === '__metadata__') continue
        const src = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])
        const halves = new Uint16Array(src.buffer.slice(src.byteOffset, src.byteOffset + src.length))
        const f32 = new Float32Array(halves.length)
        for (let i = 0; i < halves.length; i++) f32[i] = HALF[halves[i]]
        const bf = new Uint16Array(f32.length)
        const bits = new Uint32Array(f32.buffer)
        for (let i = 0; i < bf.length; i++) bf[i] = bits[i] >>> 16
        const bytes = dtype === 'F32' ? Buffer.from(f32.buffer) : Buffer.from(bf.buffer)
        header[name] = { dtype, shape: e.shape, data_offsets: [offset, offset + bytes.length] }
        chunks.push(bytes)
        offset += bytes.length
      }
    }
    const json = Buffer.from(JSON.stringify(header))
    const len = Buffer.alloc(8)
    len.writeBigUInt64LE(BigInt(json.length))
    writeFileSync(join(out, 'model.safetensors'), Buffer.concat([len, json, ...chunks]))
    return out
  }

  it('float32 weights give the float16 model\'s logits exactly', async () => {
    const m = await loadModel(convert('F32'), { backendInstance: model.backend })
    try {
      expect(m.logits(prompt.slice(0, 40))).toEqual(model.logits(prompt.slice(0, 40)))
    } finally {
      m.dispose()
    }
  })

  it('bfloat16 weights load as the bfloat16 values (high half of the float32 bits)', async () => {
    const m = await loadModel(convert('BF16'), { backendInstance: model.backend })
    try {
      const F = model.backend.heap.F32
      const a = F.slice(model.weights.embed >> 2, (model.weights.embed >> 2) + 1000)
      const b = F.slice(m.weights.embed >> 2, (m.weights.embed >> 2) + 1000)
      const truncated = Float32Array.from(a)
      const u = new Uint32Array(truncated.buffer)
      for (let i = 0; i < u.length; i++) u[i] &= 0xffff0000
      expect(b).toEqual(truncated)
      // and the model still predicts much the same text
      const la = model.logits(prompt.slice(0, 30)), lb = m.logits(prompt.slice(0, 30))
      let diff = 0
      for (let i = 0; i < la.length; i++) diff = Math.max(diff, Math.abs(la[i] - lb[i]))
      expect(diff).toBeLessThan(1)
    } finally {
      m.dispose()
    }
  })
})

const HALF = Float32Array.from({ length: 65536 }, (_, h) => halfToFloat(h))

describe('generate()', () => {
  it('is greedy at temperature 0 and deterministic per seed when sampling', async () => {
    const g1 = await greedy(prompt)
    const g2 = await greedy(prompt)
    expect(g1.ids).toEqual(g2.ids)
    const s1 = await greedy(prompt, { temperature: 1, topK: 50, topP: 0.9, seed: 7 })
    const s2 = await greedy(prompt, { temperature: 1, topK: 50, topP: 0.9, seed: 7 })
    expect(s1.ids).toEqual(s2.ids)
    const others = await Promise.all([1, 2, 3].map((seed) => greedy(prompt, { temperature: 1.5, seed })))
    expect(others.some((o) => o.ids.join() !== s1.ids.join())).toBe(true)
  })

  it('streams tokens to onToken and the iterator, stops at a stop string, and honours abort', async () => {
    const seen: number[] = []
    const r = await greedy(prompt, { onToken: (t) => seen.push(t.id) })
    expect(seen).toEqual(r.ids)
    expect(r.text).toBe(model.tokenizer.decode(r.ids))
    const words = r.text.trim().split(' ')
    if (words.length > 1) {
      const stop = ' ' + words[1]
      const s = await greedy(prompt, { stop: [stop] })
      expect(s.text.includes(stop)).toBe(false)
      expect(r.text.startsWith(s.text)).toBe(true)
    }
    const ctrl = new AbortController()
    ctrl.abort(new Error('stopped by test'))
    await expect(greedy(prompt, { signal: ctrl.signal })).rejects.toThrow('stopped by test')
  })
})

describe('policies: the kvpress protocol and hook data', () => {
  it('prefills all but the last token, hands the policy its hooks, applies its decision, decodes with true positions', async () => {
    const n = prompt.length
    const calls: string[] = []
    const { layers, qHeads, kvHeads, headDim: d, hidden, group } = model.config
    let massOk = true
    const policy: Policy = statelessPolicy({
      name: 'recorder',
      needs: { observationWindow: n - 1, prefillAttentionMass: true, decodeQueries: true, hiddenStates: true, preRopeKeys: true },
      onPrefillEnd(ctx: PolicyContext): Decision {
        calls.push('prefill')
        expect(ctx.promptLength).toBe(n)
        expect(ctx.cache.length(0, 0)).toBe(n - 1)
        expect(Array.from(ctx.cache.positions(3, 1))).toEqual(Array.from({ length: n - 1 }, (_, i) => i))
        const h = ctx.hooks[2]
        expect(h.observationQueries!.length).toBe(qHeads * (n - 1) * d)
        expect(Array.from(h.observationPositions!)).toEqual(Array.from({ length: n - 1 }, (_, i) => i))
        expect(h.hiddenStates!.length).toBe((n - 1) * hidden)
        expect(h.preRopeKeys!.length).toBe((n - 1) * kvHeads * d)
        expect(h.attentionMass!.length).toBe(kvHeads * (n - 1))
        // the mass equals softmax(q.k / sqrt d) summed over every causal query, computed here from the hooks
        for (const g of [0, kvHeads - 1]) {
          const keys = ctx.cache.readKeys(2, g)
          const want = new Float64Array(n - 1)
          for (let hh = 0; hh < group; hh++) {
            const qh = g * group + hh
            for (let t = 0; t < n - 1; t++) {
              const q = h.observationQueries!.subarray((qh * (n - 1) + t) * d, (qh * (n - 1) + t + 1) * d)
              const s = Array.from({ length: t + 1 }, (_, j) => keys.subarray(j * d, (j + 1) * d).reduce((a, x, c) => a + x * q[c], 0) / Math.sqrt(d))
              const m = Math.max(...s)
              const e = s.map((x) => Math.exp(x - m))
              const z = e.reduce((a, b) => a + b, 0)
              e.forEach((x, j) => (want[j] += x / z))
            }
          }
          const got = h.attentionMass!.subarray(g * (n - 1), (g + 1) * (n - 1))
          for (let j = 0; j < n - 1; j++) if (Math.abs(got[j] - want[j]) > 1e-3 * (1 + want[j])) massOk = false
        }
        // keep the first 8 and the last 40 tokens of every head, ragged: head 1 of layer 0 keeps 20 only
        const heads = []
        for (let l = 0; l < layers; l++) for (let g = 0; g < kvHeads; g++) {
          const keep = l === 0 && g === 1
            ? Int32Array.from({ length: 20 }, (_, i) => n - 21 + i)
            : Int32Array.from([...Array(8).keys(), ...Array.from({ length: 40 }, (_, i) => n - 41 + i)])
          heads.push({ layer: l, head: g, keep })
        }
        return { heads }
      },
      onDecodeStep(ctx: PolicyContext) {
        calls.push(`step${ctx.step}`)
        expect(ctx.hooks[1].decodeQuery!.length).toBe(qHeads * d)
        expect(ctx.hooks[1].hiddenStates!.length).toBe(hidden)
        const pos = ctx.cache.positions(0, 0)
        // the last prompt token and the answer enter with their true positions
        expect(pos[pos.length - 1]).toBe(n - 1 + ctx.step - 1)
        return null
      },
    })
    const r = await greedy(prompt, { policy, maxNewTokens: 3 })
    expect(massOk).toBe(true)
    expect(calls.slice(0, 2)).toEqual(['prefill', 'step1'])
    const bpt = 2 * d * 4
    const kept = (layers * kvHeads - 1) * 48 + 20
    expect(r.stats.kvBytesAfterPrefill.hot).toBe(kept * bpt)
    expect(r.stats.kvBytes.hot).toBe((kept + layers * kvHeads * calls.filter((c) => c.startsWith('step')).length) * bpt)
    expect(r.stats.kvBytesFull).toBe((n + r.stats.newTokens - (r.ids.length === 3 ? 1 : 0)) * model.config.layers * kvHeads * bpt)
    expect(r.stats.compressMs).toBeGreaterThanOrEqual(0)
  })

  it('a keep-everything decision and an attend-to-everything selection leave the answer unchanged', async () => {
    const base = await greedy(prompt)
    const keepAll: Policy = statelessPolicy({
      name: 'keep-all',
      needs: {},
      onPrefillEnd: (ctx) => ({
        heads: Array.from({ length: model.config.layers * model.config.kvHeads }, (_, i) => ({
          layer: Math.floor(i / model.config.kvHeads), head: i % model.config.kvHeads,
          keep: Int32Array.from({ length: ctx.cache.length(0, 0) }, (_, j) => j),
        })),
      }),
      selectTokens: (ctx, layer) =>
        Array.from({ length: model.config.kvHeads }, (_, g) => Int32Array.from({ length: ctx.cache.length(layer, g) }, (_, j) => j)),
    })
    const r = await greedy(prompt, { policy: keepAll })
    expect(r.ids).toEqual(base.ids)
  })
})

describe('RoPE frequencies', () => {
  it('llama3 scaling keeps high frequencies, divides low ones by the factor and blends between', () => {
    const cfg = parseConfig({
      architectures: ['LlamaForCausalLM'], hidden_size: 256, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2,
      vocab_size: 10, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    })
    const plain = ropeInvFreq({ ...cfg, ropeScaling: null })
    const scaled = ropeInvFreq(cfg)
    for (let i = 0; i < plain.length; i++) {
      const wavelen = (2 * Math.PI) / plain[i]
      if (wavelen < 8192 / 4) expect(scaled[i]).toBe(plain[i])
      else if (wavelen > 8192) expect(scaled[i]).toBeCloseTo(plain[i] / 8, 12)
      else {
        const smooth = (8192 / wavelen - 1) / 3
        expect(scaled[i]).toBeCloseTo((1 - smooth) * (plain[i] / 8) + smooth * plain[i], 9)
      }
    }
    expect(plain[1]).toBeCloseTo(1 / 500000 ** (2 / 128), 7)
  })
})

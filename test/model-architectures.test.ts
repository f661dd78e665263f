import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { parseConfig, ropeInvFreq } from '../src/model/config.js'
import { safetensorsF32 } from './tiny-model.js'
import { plainOps } from './plain-ops.js'

// Tiny random Qwen2 (Q/K/V biases, untied LM head) and Llama (llama3 RoPE scaling, tied) folders, run by the
// runtime and by a plain TypeScript forward pass written here from the Llama equations.
const dir = mkdtempSync(join(tmpdir(), 'kvkit-arch-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const V = 4096, H = 32, NH = 4, KVH = 2, D = 8, I = 48, LAYERS = 2

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5
    return ((s >>> 0) / 4294967296) * 2 - 1
  }
}

type Tensors = Record<string, { shape: number[]; data: Float32Array }>

function makeFolder(name: string, config: Record<string, unknown>, bias: boolean, tied: boolean): { path: string; t: Tensors } {
  const r = rng(name.length * 7 + 1)
  const t: Tensors = {}
  const add = (n: string, shape: number[], scale = 0.2, offset = 0) => {
    t[n] = { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + r() * scale) }
  }
  add('model.embed_tokens.weight', [V, H], 1)
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`
    add(p + 'input_layernorm.weight', [H], 0.2, 1)
    add(p + 'post_attention_layernorm.weight', [H], 0.2, 1)
    add(p + 'self_attn.q_proj.weight', [NH * D, H], 0.4)
    add(p + 'self_attn.k_proj.weight', [KVH * D, H], 0.4)
    add(p + 'self_attn.v_proj.weight', [KVH * D, H], 0.4)
    add(p + 'self_attn.o_proj.weight', [H, NH * D], 0.3)
    if (bias) {
      add(p + 'self_attn.q_proj.bias', [NH * D], 0.5)
      add(p + 'self_attn.k_proj.bias', [KVH * D], 0.5)
      add(p + 'self_attn.v_proj.bias', [KVH * D], 0.5)
    }
    add(p + 'mlp.gate_proj.weight', [I, H], 0.3)
    add(p + 'mlp.up_proj.weight', [I, H], 0.3)
    add(p + 'mlp.down_proj.weight', [H, I], 0.3)
  }
  add('model.norm.weight', [H], 0.2, 1)
  if (!tied) add('lm_head.weight', [V, H], 0.5)
  const path = join(dir, name)
  mkdirSync(path)
  writeFileSync(join(path, 'model.safetensors'), safetensorsF32(Object.entries(t).map(([n, { shape, data }]) => ({ name: n, shape, data }))))
  writeFileSync(join(path, 'config.json'), JSON.stringify({
    hidden_size: H, intermediate_size: I, num_hidden_layers: LAYERS, num_attention_heads: NH, num_key_value_heads: KVH,
    vocab_size: V, rms_norm_eps: 1e-6, max_position_embeddings: 4096, tie_word_embeddings: tied, ...config,
  }))
  copyFileSync('models/fixture-14m/tokenizer.json', join(path, 'tokenizer.json'))
  return { path, t }
}

/** the Llama forward pass, token by token with a plain array cache: the independent reference */
function plainForward(t: Tensors, invFreq: Float32Array, ids: number[], bias: boolean, tied: boolean, eps: number): Float64Array[] {
  const W = (n: string) => t[n].data
  const { rms, lin, rope } = plainOps(eps, D, invFreq)
  const K: Float64Array[][] = Array.from({ length: LAYERS }, () => [])
  const Vs: Float64Array[][] = Array.from({ length: LAYERS }, () => [])
  return ids.map((id, pos) => {
    let x = Float64Array.from(W('model.embed_tokens.weight').subarray(id * H, (id + 1) * H))
    for (let l = 0; l < LAYERS; l++) {
      const p = `model.layers.${l}.`
      const xn = rms(x, W(p + 'input_layernorm.weight'))
      const q = rope(lin(xn, W(p + 'self_attn.q_proj.weight'), NH * D, bias ? W(p + 'self_attn.q_proj.bias') : undefined), pos)
      K[l].push(rope(lin(xn, W(p + 'self_attn.k_proj.weight'), KVH * D, bias ? W(p + 'self_attn.k_proj.bias') : undefined), pos))
      Vs[l].push(lin(xn, W(p + 'self_attn.v_proj.weight'), KVH * D, bias ? W(p + 'self_attn.v_proj.bias') : undefined))
      const att = new Float64Array(NH * D)
      for (let h = 0; h < NH; h++) {
        const g = Math.floor(h / (NH / KVH))
        const s = K[l].map((k) => { let a = 0; for (let c = 0; c < D; c++) a += q[h * D + c] * k[g * D + c]; return a / Math.sqrt(D) })
        const m = Math.max(...s)
        const e = s.map((v) => Math.exp(v - m))
        const z = e.reduce((a, b) => a + b, 0)
        e.forEach((pj, j) => { for (let c = 0; c < D; c++) att[h * D + c] += (pj / z) * Vs[l][j][g * D + c] })
      }
      x = x.map((v, i) => v + lin(att, W(p + 'self_attn.o_proj.weight'), H)[i])
      const xn2 = rms(x, W(p + 'post_attention_layernorm.weight'))
      const gate = lin(xn2, W(p + 'mlp.gate_proj.weight'), I)
      const up = lin(xn2, W(p + 'mlp.up_proj.weight'), I)
      const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i])
      const down = lin(act, W(p + 'mlp.down_proj.weight'), H)
      x = x.map((v, i) => v + down[i])
    }
    return lin(rms(x, W('model.norm.weight')), W(tied ? 'model.embed_tokens.weight' : 'lm_head.weight'), V)
  })
}

describe('other Llama-family architectures against a plain TypeScript forward pass', () => {
  const ids = [0, 17, 400, 3000, 5, 5, 99, 1234, 7, 4095, 12, 300]
  it.each([
    ['Qwen2 with Q/K/V biases and an untied LM head', { architectures: ['Qwen2ForCausalLM'], rope_theta: 1e6 }, true, false],
    ['Llama with llama3 RoPE scaling and tied embeddings', { architectures: ['LlamaForCausalLM'], rope_theta: 5e5, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8 } }, false, true],
    ['Mistral', { architectures: ['MistralForCausalLM'] }, false, false],
  ] as const)('%s', async (name, config, bias, tied) => {
    const { path, t } = makeFolder(name.replace(/\W+/g, '-'), config, bias, tied)
    const model = await loadModel(path, { backend: 'wasm', chunk: 5 })
    try {
      const cfg = parseConfig(JSON.parse(JSON.stringify({ hidden_size: H, intermediate_size: I, num_hidden_layers: LAYERS, num_attention_heads: NH, num_key_value_heads: KVH, vocab_size: V, ...config })))
      const want = plainForward(t, ropeInvFreq(cfg), ids, bias, tied, 1e-6)
      const got = model.logits(ids)
      let worst = 0
      want.forEach((row, p) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(got[p * V + i] - v) / (1 + Math.abs(v))))))
      expect(worst).toBeLessThan(1e-4)
    } finally {
      model.dispose()
    }
  })
})

/**
 * A tiny random Llama folder (4 layers, hidden 32, 4 query heads over 2 KV heads of 8 channels, the
 * fixture's tokenizer) for grids that need the runtime's behaviour, not a trained model's answers: it
 * loads and generates in milliseconds.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { rng } from './kernels-helpers.js'
import { safetensorsF32 } from '../tools/safetensors-writer.js'

export const TINY = { V: 4096, H: 32, NH: 4, KVH: 2, D: 8, I: 48, LAYERS: 4 }

/** writes the folder; `config` overrides config.json fields; `poison` names a tensor whose first value is NaN */
export function makeTinyModel(config: Record<string, unknown> = {}, seed = 3, poison?: string): string {
  const { V, H, NH, KVH, D, I, LAYERS } = TINY
  const r = rng(seed)
  const tensors: [string, number[], number, number][] = [['model.embed_tokens.weight', [V, H], 1, 0]]
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}.`
    tensors.push(
      [p + 'input_layernorm.weight', [H], 0.2, 1], [p + 'post_attention_layernorm.weight', [H], 0.2, 1],
      [p + 'self_attn.q_proj.weight', [NH * D, H], 0.6, 0], [p + 'self_attn.k_proj.weight', [KVH * D, H], 0.6, 0],
      [p + 'self_attn.v_proj.weight', [KVH * D, H], 0.4, 0], [p + 'self_attn.o_proj.weight', [H, NH * D], 0.3, 0],
      [p + 'mlp.gate_proj.weight', [I, H], 0.3, 0], [p + 'mlp.up_proj.weight', [I, H], 0.3, 0], [p + 'mlp.down_proj.weight', [H, I], 0.3, 0],
    )
  }
  tensors.push(['model.norm.weight', [H], 0.2, 1])
  const data = tensors.map(([name, shape, scale, offset]) => ({
    name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + (r() * 2 - 1) * scale),
  }))
  if (poison) data.find((t) => t.name === poison)!.data[0] = NaN
  const path = mkdtempSync(join(tmpdir(), 'kvkit-tiny-'))
  mkdirSync(path, { recursive: true })
  writeFileSync(join(path, 'model.safetensors'), safetensorsF32(data))
  writeFileSync(join(path, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], hidden_size: H, intermediate_size: I, num_hidden_layers: LAYERS, num_attention_heads: NH,
    num_key_value_heads: KVH, vocab_size: V, rms_norm_eps: 1e-6, max_position_embeddings: 4096, tie_word_embeddings: true,
    bos_token_id: 0, eos_token_id: 0, ...config,
  }))
  copyFileSync('models/fixture-14m/tokenizer.json', join(path, 'tokenizer.json'))
  return path
}

export { safetensorsF32 } from '../tools/safetensors-writer.js'

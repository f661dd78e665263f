// Writes a random (untrained) masked diffusion LM folder in Dream's format (HKUNLP/Dream: config.json with
// architectures DreamModel and mask_token_id, Qwen2 weight names with Q/K/V biases, tied LM head) and the
// fixture's tokenizer plus the added token <|mask|>: what tests and bench/diffusion.ts run on until a
// trained model is there. Its answers are noise; its shapes, the format and the decoding are real.
//   npm run build && node dist/tools/dream-random.js OUT_DIR [--hidden 64] [--layers 2] [--seed 1]
//   npm run build && node dist/tools/dream-random.js OUT_DIR --fixture-shape [--seed 1]   (models/diffusion-14m's shape)
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { safetensorsF32 } from './safetensors-writer.js'

export interface DreamShape {
  hidden: number
  heads: number
  kvHeads: number
  headDim: number
  intermediate: number
  layers: number
  /** the fixture tokenizer's 4096 tokens and the mask token */
  vocab: number
  maxPositions: number
}

/** the shape of the diffusion fixture (models/diffusion-14m): the causal fixture's, plus the mask token */
export const FIXTURE_DREAM: DreamShape = { hidden: 384, heads: 6, kvHeads: 2, headDim: 64, intermediate: 1024, layers: 8, vocab: 4097, maxPositions: 2048 }

export const TINY_DREAM: DreamShape = { hidden: 32, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48, layers: 2, vocab: 4097, maxPositions: 2048 }

export type Tensors = Record<string, { shape: number[]; data: Float32Array }>

/** xorshift32 in [-1, 1) */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1
  return () => {
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5
    return ((s >>> 0) / 4294967296) * 2 - 1
  }
}

/** the random tensors of a Dream model (Qwen2 names); scales keep activations O(1) so argmaxes are not ties */
export function randomDreamTensors(s: DreamShape, seed: number): Tensors {
  const r = rng(seed)
  const t: Tensors = {}
  const add = (n: string, shape: number[], scale: number, offset = 0) => {
    t[n] = { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + r() * scale) }
  }
  const { hidden: H, heads: NH, kvHeads: KVH, headDim: D, intermediate: I } = s
  add('model.embed_tokens.weight', [s.vocab, H], 1)
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`
    add(p + 'input_layernorm.weight', [H], 0.2, 1)
    add(p + 'post_attention_layernorm.weight', [H], 0.2, 1)
    add(p + 'self_attn.q_proj.weight', [NH * D, H], 2 / Math.sqrt(H))
    add(p + 'self_attn.q_proj.bias', [NH * D], 0.3)
    add(p + 'self_attn.k_proj.weight', [KVH * D, H], 2 / Math.sqrt(H))
    add(p + 'self_attn.k_proj.bias', [KVH * D], 0.3)
    add(p + 'self_attn.v_proj.weight', [KVH * D, H], 1.5 / Math.sqrt(H))
    add(p + 'self_attn.v_proj.bias', [KVH * D], 0.3)
    add(p + 'self_attn.o_proj.weight', [H, NH * D], 1 / Math.sqrt(NH * D))
    add(p + 'mlp.gate_proj.weight', [I, H], 1.5 / Math.sqrt(H))
    add(p + 'mlp.up_proj.weight', [I, H], 1.5 / Math.sqrt(H))
    add(p + 'mlp.down_proj.weight', [H, I], 1 / Math.sqrt(I))
  }
  add('model.norm.weight', [H], 0.2, 1)
  return t
}

/** Dream's config.json for a shape (the fields of Dream-v0-Base-7B's, Qwen2-style) */
export function dreamConfig(s: DreamShape, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['DreamModel'], model_type: 'Dream', hidden_size: s.hidden, intermediate_size: s.intermediate,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, head_dim: s.headDim,
    rope_theta: 100000, rms_norm_eps: 1e-5, tie_word_embeddings: true, max_position_embeddings: s.maxPositions,
    vocab_size: s.vocab, mask_token_id: s.vocab - 1, bos_token_id: 0, eos_token_id: 0, pad_token_id: 1, hidden_act: 'silu', ...extra,
  }
}

/** the fixture's tokenizer.json with <|mask|> added at `maskId` */
export function dreamTokenizer(fixtureTokenizer: string, maskId: number): unknown {
  const tok = JSON.parse(readFileSync(fixtureTokenizer, 'utf8'))
  tok.added_tokens.push({ id: maskId, content: '<|mask|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })
  return tok
}

/** writes the folder at `dir` (created); returns its tensors (for a reference forward pass) */
export function writeDreamFolder(dir: string, s: DreamShape = TINY_DREAM, seed = 1, extra: Record<string, unknown> = {}, fixture = 'models/fixture-14m'): Tensors {
  const t = randomDreamTensors(s, seed)
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'model.safetensors'), safetensorsF32(Object.entries(t).map(([name, { shape, data }]) => ({ name, shape, data }))))
  writeFileSync(join(dir, 'config.json'), JSON.stringify(dreamConfig(s, extra), null, 2))
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(dreamTokenizer(join(fixture, 'tokenizer.json'), s.vocab - 1)))
  copyFileSync(join(fixture, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'))
  return t
}

const main = process.argv[1]?.endsWith('dream-random.js')
if (main) {
  const args = process.argv.slice(2)
  const out = args[0]
  if (!out || out.startsWith('--')) {
    console.error('usage: node dist/tools/dream-random.js OUT_DIR [--hidden 64] [--layers 2] [--seed 1]')
    process.exit(2)
  }
  const opt = (name: string, d: number) => {
    const i = args.indexOf(`--${name}`)
    return i < 0 ? d : Number(args[i + 1])
  }
  const hidden = opt('hidden', 64)
  const heads = Math.max(1, hidden / 16)
  const shape: DreamShape = args.includes('--fixture-shape')
    ? FIXTURE_DREAM
    : { ...TINY_DREAM, hidden, heads, kvHeads: heads % 2 ? heads : heads / 2, headDim: 16, intermediate: hidden * 3, layers: opt('layers', 2) }
  writeDreamFolder(out, shape, opt('seed', 1))
  console.log(`wrote a random Dream folder (hidden ${shape.hidden}, ${shape.layers} layers) to ${out}`)
}

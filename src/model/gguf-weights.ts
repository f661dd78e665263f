import type { Heap } from '../backend/heap.js'
import { ModelLoadError } from './errors.js'
import type { GgufFile } from './gguf.js'
import type { ModelConfig } from './types.js'
import { assembleWeights, checkWeightsFit, type Weights } from './weights.js'

/**
 * A GGUF file's weights in kvkit's arena, widened to float32. Tensor names are llama.cpp's
 * (gguf-py/gguf/tensor_mapping.py); shapes are checked against the metadata's config.
 */

/** Hugging Face tensor name -> GGUF tensor name (llama.cpp's LLM_TENSOR names for the llama family). */
export function ggufTensorName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight'
  if (hf === 'model.norm.weight') return 'output_norm.weight'
  if (hf === 'lm_head.weight') return 'output.weight'
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hf)
  if (!m) throw new RangeError(`no GGUF name for ${hf}`)
  const parts: Record<string, string> = {
    input_layernorm: 'attn_norm', post_attention_layernorm: 'ffn_norm',
    'self_attn.q_proj': 'attn_q', 'self_attn.k_proj': 'attn_k', 'self_attn.v_proj': 'attn_v', 'self_attn.o_proj': 'attn_output',
    'mlp.gate_proj': 'ffn_gate', 'mlp.up_proj': 'ffn_up', 'mlp.down_proj': 'ffn_down',
  }
  if (!(m[2] in parts)) throw new RangeError(`no GGUF name for ${hf}`)
  return `blk.${m[1]}.${parts[m[2]]}.${m[3]}`
}

/**
 * llama.cpp's converter reorders the rows of each Q and K head for the `llama` architecture
 * (convert_hf_to_gguf.py LlamaModel.permute: rotate-half pairs (i, i + d/2) become adjacent rows
 * (2i, 2i + 1), for its interleaved RoPE). kvkit rotates halves as Transformers does, so the rows go
 * back: row s * d/2 + i of a head comes from GGUF row 2i + s. `rows` x `cols` floats at `at` in `f`.
 */
export function unpermuteHeads(f: Float32Array, at: number, rows: number, cols: number, headDim: number): void {
  const copy = f.slice(at, at + rows * cols)
  const half = headDim / 2
  for (let h = 0; h < rows / headDim; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * headDim + 2 * i + s) * cols
        const to = at + (h * headDim + s * half + i) * cols
        f.set(copy.subarray(from, from + cols), to)
      }
    }
  }
}

/** the inverse of unpermuteHeads (what the converter does), for the GGUF writer and tests */
export function permuteHeads(f: Float32Array, rows: number, cols: number, headDim: number): Float32Array {
  const out = new Float32Array(f.length)
  const half = headDim / 2
  for (let h = 0; h < rows / headDim; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = (h * headDim + s * half + i) * cols
        out.set(f.subarray(from, from + cols), (h * headDim + 2 * i + s) * cols)
      }
    }
  }
  return out
}

export async function loadGgufWeights(file: GgufFile, cfg: ModelConfig, heap: Heap): Promise<Weights> {
  checkWeightsFit(cfg, heap, file.path)
  const permuted = file.metadata['general.architecture'] === 'llama'
  return assembleWeights(cfg, heap, async (hfName, shape, optional) => {
    const name = ggufTensorName(hfName)
    const t = file.tensors.get(name)
    if (!t) {
      if (optional) return null
      throw new ModelLoadError(`${file.path}: tensor ${name} is missing`)
    }
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new ModelLoadError(`${file.path}: tensor ${name} has shape ${JSON.stringify(t.shape)}, the metadata implies ${JSON.stringify(shape)}`)
    }
    const qk = permuted && /\.attn_[qk]\.(weight|bias)$/.test(name)
    return async (ptr) => {
      await file.readInto(t, heap, ptr)
      if (qk) unpermuteHeads(heap.F32, ptr >> 2, shape[0], shape.length > 1 ? shape[1] : 1, cfg.headDim)
    }
  })
}

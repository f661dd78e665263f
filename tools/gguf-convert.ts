/**
 * kvkit's Hugging Face -> GGUF converter for Llama-family folders (the fixture and its kind), written
 * because llama.cpp's own convert_hf_to_gguf.py needs PyTorch, which this machine does not have. It
 * writes what that script writes for a `llama` model: the same metadata keys, tensor names, Q/K row
 * order (LlamaModel.permute) and 1-D tensors kept in F32; quantized types use ggml's reference
 * quantizers. Checked by node-llama-cpp loading the file (test/gguf-node-llama-cpp.test.ts).
 *
 *   node dist/tools/gguf-convert.js models/fixture-14m /tmp/fixture-f16.gguf --outtype f16
 *
 * --outtype: f32, f16 (default), bf16, q8_0, q4_0 (the names of convert_hf_to_gguf.py's flag).
 */
import { writeFileSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Heap } from '../src/backend/heap.js'
import { parseConfig } from '../src/model/config.js'
import { GGML_TYPE } from '../src/model/ggml.js'
import { ggufTensorName, permuteHeads } from '../src/model/gguf-weights.js'
import { readJsonFile } from '../src/model/json-file.js'
import type { ModelConfig } from '../src/model/types.js'
import { loadWeights } from '../src/model/weights.js'
import { DirectorySource } from '../src/node/directory.js'
import { bool, f32, i32s, str, strings, u32, writeGguf, type GgufTensorIn, type GgufValue } from './gguf-writer.js'

export const OUTTYPES = { f32: GGML_TYPE.F32, f16: GGML_TYPE.F16, bf16: GGML_TYPE.BF16, q8_0: GGML_TYPE.Q8_0, q4_0: GGML_TYPE.Q4_0 } as const
export type OutType = keyof typeof OUTTYPES
/** llama_ftype (general.file_type) of each */
const FILE_TYPE: Record<OutType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7, bf16: 32 }

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }
  pre_tokenizer?: { type?: string; use_regex?: boolean }
  added_tokens?: { id: number; content: string; special?: boolean }[]
}

/** tokenizer.ggml.* for a byte-level BPE tokenizer.json with GPT-2's pre-tokenizer (else an error) */
export function tokenizerMetadata(tok: TokenizerJson, cfg: ModelConfig): Record<string, GgufValue> {
  if (tok.model?.type !== 'BPE' || tok.pre_tokenizer?.type !== 'ByteLevel' || tok.pre_tokenizer.use_regex === false) {
    throw new Error(`tokenizer.json: only byte-level BPE with GPT-2's pre-tokenizer is converted (got ${tok.model?.type} / ${tok.pre_tokenizer?.type})`)
  }
  const tokens: string[] = new Array(cfg.vocab)
  const types: number[] = new Array(cfg.vocab).fill(1)
  for (const [t, id] of Object.entries(tok.model.vocab ?? {})) tokens[id] = t
  for (const a of tok.added_tokens ?? []) {
    tokens[a.id] = a.content
    types[a.id] = a.special ? 3 : 4
  }
  // ids the tokenizer never produces still need a row in llama.cpp's vocabulary (as the converter pads)
  for (let i = 0; i < cfg.vocab; i++) if (tokens[i] === undefined) [tokens[i], types[i]] = [`[PAD${i}]`, 5]
  const md: Record<string, GgufValue> = {
    'tokenizer.ggml.model': str('gpt2'),
    'tokenizer.ggml.pre': str('gpt-2'),
    'tokenizer.ggml.tokens': strings(tokens),
    'tokenizer.ggml.token_type': i32s(types),
    'tokenizer.ggml.merges': strings((tok.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m))),
    // prompts are token ids that callers build (bos first); text is tokenized without special tokens
    'tokenizer.ggml.add_bos_token': bool(false),
  }
  if (cfg.bosTokenId !== null) md['tokenizer.ggml.bos_token_id'] = u32(cfg.bosTokenId)
  if (cfg.eosTokenIds.length) md['tokenizer.ggml.eos_token_id'] = u32(cfg.eosTokenIds[0])
  if (cfg.padTokenId !== null) md['tokenizer.ggml.padding_token_id'] = u32(cfg.padTokenId)
  return md
}

/** The model folder `dir` as GGUF bytes with 2-D weights stored as `outtype`. */
export async function convertFolder(dir: string, outtype: OutType = 'f16'): Promise<Uint8Array> {
  if (!(outtype in OUTTYPES)) throw new Error(`--outtype ${JSON.stringify(outtype)}: expected one of ${Object.keys(OUTTYPES).join(', ')}`)
  const source = await DirectorySource.open(dir)
  try {
    const raw = (await readJsonFile(source, 'config.json', true)) as Record<string, unknown>
    const cfg = parseConfig(raw, await readJsonFile(source, 'generation_config.json', false))
    if (cfg.architecture !== 'LlamaForCausalLM' || cfg.ropeScaling) throw new Error(`${dir}: only LlamaForCausalLM without RoPE scaling is converted (got ${cfg.architecture})`)
    const heap = new Heap()
    const w = await loadWeights(source, cfg, heap)
    const { hidden: H, intermediate: I, qHeads, kvHeads, headDim: d, vocab } = cfg
    const type = OUTTYPES[outtype]
    const tensors: GgufTensorIn[] = []
    const add = (hf: string, ptr: number, shape: number[], permuteRows = false) => {
      if (!ptr) return
      let data: Float32Array = heap.F32.slice(ptr >> 2, (ptr >> 2) + shape.reduce((a, b) => a * b, 1))
      if (permuteRows) data = permuteHeads(data, shape[0], shape[1] ?? 1, d)
      tensors.push({ name: ggufTensorName(hf), type: shape.length === 1 ? GGML_TYPE.F32 : type, shape, data })
    }
    add('model.embed_tokens.weight', w.embed, [vocab, H])
    w.layers.forEach((l, i) => {
      const p = `model.layers.${i}.`
      add(p + 'input_layernorm.weight', l.inputNorm, [H])
      add(p + 'self_attn.q_proj.weight', l.q, [qHeads * d, H], true)
      add(p + 'self_attn.k_proj.weight', l.k, [kvHeads * d, H], true)
      add(p + 'self_attn.v_proj.weight', l.v, [kvHeads * d, H])
      add(p + 'self_attn.o_proj.weight', l.o, [H, qHeads * d])
      add(p + 'self_attn.q_proj.bias', l.qBias, [qHeads * d], true)
      add(p + 'self_attn.k_proj.bias', l.kBias, [kvHeads * d], true)
      add(p + 'self_attn.v_proj.bias', l.vBias, [kvHeads * d])
      add(p + 'post_attention_layernorm.weight', l.postNorm, [H])
      add(p + 'mlp.gate_proj.weight', l.gate, [I, H])
      add(p + 'mlp.up_proj.weight', l.up, [I, H])
      add(p + 'mlp.down_proj.weight', l.down, [H, I])
    })
    add('model.norm.weight', w.norm, [H])
    if (!cfg.tieWordEmbeddings) add('lm_head.weight', w.lmHead, [vocab, H])
    const md: Record<string, GgufValue> = {
      'general.architecture': str('llama'),
      'general.name': str(basename(resolve(dir))),
      'general.file_type': u32(FILE_TYPE[outtype]),
      'general.quantization_version': u32(2),
      'llama.context_length': u32(cfg.maxPositions),
      'llama.embedding_length': u32(H),
      'llama.block_count': u32(cfg.layers),
      'llama.feed_forward_length': u32(I),
      'llama.attention.head_count': u32(qHeads),
      'llama.attention.head_count_kv': u32(kvHeads),
      'llama.attention.key_length': u32(d),
      'llama.attention.value_length': u32(d),
      'llama.rope.dimension_count': u32(d),
      'llama.rope.freq_base': f32(cfg.ropeTheta),
      'llama.attention.layer_norm_rms_epsilon': f32(cfg.rmsNormEps),
      'llama.vocab_size': u32(vocab),
      ...tokenizerMetadata((await readJsonFile(source, 'tokenizer.json', true)) as TokenizerJson, cfg),
    }
    return writeGguf(md, tensors)
  } finally {
    await source.close()
  }
}

async function main(argv: string[]): Promise<void> {
  const i = argv.indexOf('--outtype')
  const outtype = (i >= 0 ? argv[i + 1] : 'f16') as OutType
  const [dir, out] = argv.filter((_, j) => j !== i && j !== i + 1)
  if (!dir || !out) {
    console.error('usage: node dist/tools/gguf-convert.js MODEL_DIR OUT.gguf [--outtype f32|f16|bf16|q8_0|q4_0]')
    process.exit(2)
  }
  const bytes = await convertFolder(dir, outtype)
  writeFileSync(out, bytes)
  console.log(`${out}: ${bytes.length} bytes, ${outtype}`)
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e) => {
    console.error((e as Error).message)
    process.exit(1)
  })
}

import { ModelLoadError } from './errors.js'
import type { GgufMetadata } from './gguf.js'

/**
 * The tokenizer a GGUF file carries (`tokenizer.ggml.*`), as the tokenizer.json that
 * @huggingface/tokenizers builds. Only byte-level BPE with GPT-2's pre-tokenizer is rebuilt from the
 * metadata (`tokenizer.ggml.model` "gpt2", `tokenizer.ggml.pre` "gpt-2" or "default"): other
 * pre-tokenizers are regexes that llama.cpp keeps in its source, not in the file, so a model with one
 * needs its tokenizer.json beside the .gguf file.
 */

/** llama.cpp's `llama_token_type` (gguf-py TokenType): 3 = control, 4 = user defined */
const CONTROL = 3
const USER_DEFINED = 4
const PRE_TOKENIZERS = ['gpt-2', 'default']

function stringArray(md: GgufMetadata, key: string, where: string): string[] {
  const v = md[key]
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ModelLoadError(`${where}: ${key} must be an array of strings, got ${v === undefined ? 'nothing (missing)' : typeof v}`)
  return v as string[]
}

/** tokenizer.json contents for the file's vocabulary; ModelLoadError naming the key for anything else. */
export function ggufTokenizerJson(md: GgufMetadata, where: string): object {
  const model = md['tokenizer.ggml.model']
  const pre = md['tokenizer.ggml.pre'] ?? 'default'
  if (model !== 'gpt2' || !PRE_TOKENIZERS.includes(pre as string)) {
    throw new ModelLoadError(
      `${where}: tokenizer.ggml.model ${JSON.stringify(model)} with tokenizer.ggml.pre ${JSON.stringify(pre)} cannot be rebuilt from the metadata ` +
        `(kvkit rebuilds "gpt2" with pre ${PRE_TOKENIZERS.map((p) => JSON.stringify(p)).join(' or ')}); put the model's tokenizer.json beside the .gguf file`,
    )
  }
  const tokens = stringArray(md, 'tokenizer.ggml.tokens', where)
  const merges = stringArray(md, 'tokenizer.ggml.merges', where)
  const types = md['tokenizer.ggml.token_type']
  if (types !== undefined && (!Array.isArray(types) || types.length !== tokens.length)) {
    throw new ModelLoadError(`${where}: tokenizer.ggml.token_type must be an array of ${tokens.length} (one per token), got ${Array.isArray(types) ? `${types.length}` : typeof types}`)
  }
  const vocab: Record<string, number> = {}
  const added: object[] = []
  tokens.forEach((t, id) => {
    if (Object.hasOwn(vocab, t)) throw new ModelLoadError(`${where}: tokenizer.ggml.tokens holds ${JSON.stringify(t)} twice (ids ${vocab[t]} and ${id})`)
    vocab[t] = id
    const type = Array.isArray(types) ? Number(types[id]) : 1
    if (type === CONTROL || type === USER_DEFINED) added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: type === CONTROL })
  })
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
      merges: merges.map((m, i) => {
        const parts = m.split(' ')
        if (parts.length !== 2) throw new ModelLoadError(`${where}: tokenizer.ggml.merges[${i}] ${JSON.stringify(m)} is not two tokens separated by one space`)
        return parts
      }),
    },
  }
}

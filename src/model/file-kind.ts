/**
 * What a model input that is not a model is, for the loaders' refusals: the messages say what was found
 * and what loadModel takes, where they said only "not a GGUF file (it starts with 7b 0a 20 20 ...)".
 */

/** what loadModel takes, said in every refusal of a model input that is neither */
export const EXPECTED_MODEL =
  'loadModel expects a Hugging Face model folder (config.json, tokenizer.json, and model.safetensors or model.safetensors.index.json with its shards) or a .gguf file'

/** what a file's first bytes (`head`, up to 16) say it is: a JSON file, a safetensors file, or its first bytes in hex */
export function fileStartKind(head: Uint8Array): string {
  if (head.length === 0) return 'an empty file'
  const text = new TextDecoder().decode(head.subarray(0, 16))
  if (/^\s*[{[]/.test(text)) return 'a JSON file'
  // safetensors: a little-endian u64 header length (below 2^40: its high bytes zero), then the JSON header
  if (head.length >= 9 && head[8] === 0x7b && head[5] === 0 && head[6] === 0 && head[7] === 0) return 'a safetensors file'
  return `a file starting with ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}, not "GGUF"`
}

import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Heap } from '../src/backend/heap.js'
import { ModelLoadError } from '../src/model/errors.js'
import { loadModel } from '../src/node/load.js'
import { parseConfig } from '../src/model/config.js'
import { MAX_HEADER_BYTES, SafetensorsFile, parseSafetensorsBytes, parseSafetensorsHeader } from '../src/model/safetensors.js'
import { GateFileError, parseGatesSafetensors } from '../src/policies/trimkv-gates.js'
import { DirectorySource } from '../src/node/directory.js'

// Model files are untrusted: every malformed input below must end in a ModelLoadError that says what is
// wrong, without reading outside the file, allocating what the file cannot back, or hanging.
const dir = mkdtempSync(join(tmpdir(), 'kvkit-st-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function safetensors(header: unknown, data: Uint8Array = new Uint8Array(0), lengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header))
  const out = new Uint8Array(8 + json.length + data.length)
  new DataView(out.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true)
  out.set(json, 8)
  out.set(data, 8 + json.length)
  return out
}
let count = 0
let folderSource: DirectorySource | undefined
afterAll(() => folderSource?.close())
/** the bytes as a file of the test folder, opened through the folder source the loader uses */
async function file(bytes: Uint8Array): Promise<SafetensorsFile> {
  const name = `t${count++}.safetensors`
  writeFileSync(join(dir, name), bytes)
  folderSource ??= await DirectorySource.open(dir)
  return SafetensorsFile.open(folderSource, name)
}
async function openError(bytes: Uint8Array): Promise<string> {
  try {
    (await file(bytes)).close()
  } catch (e) {
    expect(e).toBeInstanceOf(ModelLoadError)
    return (e as Error).message
  }
  throw new Error('expected a ModelLoadError')
}

describe('safetensors headers that lie', () => {
  const f32 = (shape: number[], offs: number[]) => ({ w: { dtype: 'F32', shape, data_offsets: offs } })
  const cases: [string, Uint8Array, RegExp][] = [
    ['an empty file', new Uint8Array(0), /too short/],
    ['a truncated length prefix', new Uint8Array(5), /too short/],
    ['a header longer than the file', safetensors({}, new Uint8Array(0), 1000n), /header length 1000 exceeds/],
    ['a huge declared header', safetensors({}, new Uint8Array(0), 1n << 62n), /exceeds/],
    ['malformed JSON', safetensors('{"w": {"dtype": "F32", '), /not valid UTF-8 JSON/],
    ['invalid UTF-8', safetensors(String.fromCharCode(0x7b) + '\udc00}'), /not valid UTF-8 JSON|JSON/],
    ['a JSON array', safetensors([1, 2]), /must be a JSON object/],
    ['an unknown dtype', safetensors({ w: { dtype: 'F17', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4)), /unknown dtype "F17"/],
    ['offsets past the end', safetensors(f32([4], [0, 16]), new Uint8Array(8)), /data_offsets \[0, 16\] lie outside the 8 data bytes/],
    ['reversed offsets', safetensors(f32([0], [8, 4]), new Uint8Array(8)), /lie outside/],
    ['negative offsets', safetensors(f32([1], [-4, 0]), new Uint8Array(8)), /non-negative integers/],
    ['a shape that disagrees with the offsets', safetensors(f32([3], [0, 8]), new Uint8Array(8)), /needs 12 bytes, data_offsets give 8/],
    ['a huge declared shape', safetensors(f32([1e9, 1e9, 1e9], [0, 8]), new Uint8Array(8)), /more elements than the file holds/],
    ['a non-integer shape', safetensors(f32([1.5], [0, 4]), new Uint8Array(8)), /non-negative integers/],
    ['overlapping tensors', safetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /overlap/],
    ['an entry that is not an object', safetensors({ w: 3 }), /entry must be an object/],
  ]
  it.each(cases)('%s', async (_name, bytes, message) => {
    expect(await openError(bytes)).toMatch(message)
  })

  // TRIM-KV's gate files are read in memory by the same reader: the same lies, the same messages, as GateFileErrors
  it.each(cases)('%s, in a TRIM-KV gate file', (_name, bytes, message) => {
    expect(() => parseSafetensorsBytes(bytes)).toThrow(ModelLoadError)
    expect(() => parseSafetensorsBytes(bytes)).toThrow(message)
    expect(() => parseGatesSafetensors(bytes)).toThrow(GateFileError)
    expect(() => parseGatesSafetensors(bytes)).toThrow(message)
  })

  it('the header limit is far below what a lying length could ask for', () => {
    expect(MAX_HEADER_BYTES).toBeLessThanOrEqual(100 * 1024 * 1024)
  })

  it('random byte flips and truncations of a valid file end in a clear error or a valid parse, never a crash', async () => {
    const data = new Uint8Array(64)
    const good = safetensors({ a: { dtype: 'F16', shape: [4, 2], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [12], data_offsets: [16, 64] } }, data)
    let s = 12345
    const rand = (n: number) => ((s = (s * 1103515245 + 12345) >>> 0) % n)
    const heap = new Heap()
    for (let trial = 0; trial < 300; trial++) {
      const bytes = good.slice(0, trial % 3 === 0 ? rand(good.length) : good.length)
      for (let f = 0; f < 1 + rand(4); f++) if (bytes.length) bytes[rand(bytes.length)] = rand(256)
      let st: SafetensorsFile | undefined
      try {
        st = await file(bytes)
      } catch (e) {
        expect(e).toBeInstanceOf(ModelLoadError)
        continue
      }
      // whatever parsed must read within the file
      for (const info of st.tensors.values()) {
        expect(info.end).toBeLessThanOrEqual(bytes.length)
        if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16') {
          const n = info.shape.reduce((a, b) => a * b, 1)
          const p = heap.alloc(n * 4)
          await st.readInto(info, heap, p)
          heap.release(p)
        }
      }
      st.close()
    }
  })

  it('parseSafetensorsHeader checks against the real file size, not the claimed one', () => {
    const header = new TextEncoder().encode(JSON.stringify({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }))
    expect(() => parseSafetensorsHeader(header, 8 + header.length + 4)).toThrow(/outside the 4 data bytes/)
  })
})

describe('model folders that are broken', () => {
  const fixture = 'models/fixture-14m'
  /** a copy of the fixture's small files, with the given ones replaced */
  function folder(replace: Record<string, string | Uint8Array | null>, withWeights = true): string {
    const d = join(dir, `m${count++}`)
    mkdirSync(d)
    const files = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']
    if (withWeights) files.push('model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors')
    for (const f of files) if (!(f in replace)) copyFileSync(join(fixture, f), join(d, f))
    for (const [f, v] of Object.entries(replace)) if (v !== null) writeFileSync(join(d, f), v)
    return d
  }
  const config = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8'))

  it.each([
    ['a missing folder', () => join(dir, 'nope'), /model folder not found/],
    ['a missing config.json', () => folder({ 'config.json': null }), /missing file: .*config.json/],
    ['a missing tokenizer.json', () => folder({ 'tokenizer.json': null }), /missing file: .*tokenizer.json/],
    ['no weights at all', () => folder({}, false), /no model.safetensors or model.safetensors.index.json/],
    ['a config that is not JSON', () => folder({ 'config.json': '{"architectures": [' }), /config.json: not valid JSON/],
    ['an unknown architecture', () => folder({ 'config.json': JSON.stringify({ ...config, architectures: ['GPT2LMHeadModel'] }) }), /unsupported architecture \["GPT2LMHeadModel"\]/],
    ['a negative layer count', () => folder({ 'config.json': JSON.stringify({ ...config, num_hidden_layers: -2 }) }), /num_hidden_layers must be a positive integer, got -2/],
    ['heads that do not divide', () => folder({ 'config.json': JSON.stringify({ ...config, num_key_value_heads: 4 }) }), /not a multiple/],
    ['a shape that disagrees with the config', () => folder({ 'config.json': JSON.stringify({ ...config, intermediate_size: 512 }) }), /mlp.gate_proj.weight has shape \[1024,384\], config.json implies \[512,384\]/],
    ['an index pointing outside the folder', () => folder({ 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'model.norm.weight': '../../etc/passwd' } }) }), /must be a .safetensors file name inside the folder/],
    ['a missing shard', () => folder({ 'model-00002-of-00002.safetensors': null }), /cannot open .*model-00002-of-00002.safetensors/],
    ['a truncated shard', () => folder({ 'model-00002-of-00002.safetensors': readFileSync(join(fixture, 'model-00002-of-00002.safetensors')).subarray(0, 5000) }), /outside the .* data bytes/],
    ['a missing tensor', () => folder({ 'model.safetensors.index.json': JSON.stringify({ weight_map: { 'model.norm.weight': 'model-00002-of-00002.safetensors', 'model.embed_tokens.weight': 'model-00001-of-00002.safetensors' } }) }), /model.layers.0.input_layernorm.weight is missing|is missing/],
    ['unsupported RoPE scaling', () => folder({ 'config.json': JSON.stringify({ ...config, rope_scaling: { rope_type: 'yarn', factor: 4 } }) }), /RoPE scaling type "yarn" is not supported/],
  ])('%s', async (_name, make, message) => {
    await expect(loadModel(make(), { backend: 'reference' })).rejects.toThrow(message)
    await expect(loadModel(make(), { backend: 'reference' })).rejects.toBeInstanceOf(ModelLoadError)
  })

  it('an unsupported weight dtype names the tensor and the dtype', async () => {
    const d = join(dir, `m${count++}`)
    mkdirSync(d)
    for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(fixture, f), join(d, f))
    writeFileSync(join(d, 'model.safetensors'), safetensors({ 'model.embed_tokens.weight': { dtype: 'I32', shape: [4096, 384], data_offsets: [0, 4096 * 384 * 4] } }, new Uint8Array(4096 * 384 * 4)))
    await expect(loadModel(d, { backend: 'reference' })).rejects.toThrow(/model.embed_tokens.weight" has dtype I32; supported: F32, F16, BF16/)
  })
})

describe('config.json variants', () => {
  const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4, vocab_size: 100 }
  it('reads Qwen2 (Q/K/V biases), Mistral and SmolLM-style Llama configs', () => {
    const q = parseConfig({ ...base, architectures: ['Qwen2ForCausalLM'], num_key_value_heads: 2, rope_theta: 1e6, tie_word_embeddings: true })
    expect([q.attentionBias, q.kvHeads, q.group, q.headDim, q.ropeTheta, q.tieWordEmbeddings]).toEqual([true, 2, 2, 16, 1e6, true])
    const m = parseConfig({ ...base, architectures: ['MistralForCausalLM'], eos_token_id: [2, 7] })
    expect([m.attentionBias, m.kvHeads, m.ropeTheta, m.eosTokenIds]).toEqual([false, 4, 10000, [2, 7]])
    const s = parseConfig({ ...base, architectures: ['LlamaForCausalLM'], rope_parameters: { rope_theta: 5e4, rope_type: 'default' } })
    expect(s.ropeTheta).toBe(5e4)
  })
  it('reads llama3 RoPE scaling', () => {
    const c = parseConfig({ ...base, architectures: ['LlamaForCausalLM'], rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } })
    expect(c.ropeScaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 })
    expect(() => parseConfig({ ...base, architectures: ['LlamaForCausalLM'], rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(/low_freq_factor/)
  })
})

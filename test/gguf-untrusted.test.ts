import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gguf as hfGguf } from '@huggingface/gguf'
import { afterAll, describe, expect, it } from 'vitest'
import { ModelLoadError } from '../src/model/errors.js'
import { GgufFile } from '../src/model/gguf.js'
import { GGML_TYPE } from '../src/model/ggml.js'
import { loadModel } from '../src/node/load.js'
import { DirectorySource } from '../src/node/directory.js'
import { f32, str, u32, writeGguf, type GgufValue } from '../tools/gguf-writer.js'
import { fixtureGguf } from './gguf-helpers.js'

// GGUF files are untrusted input, like safetensors folders (safetensors-fuzz.test.ts): every malformed
// file ends in a ModelLoadError naming what is wrong, before anything is allocated from its claims,
// without reading outside the file or hanging.
const dir = mkdtempSync(join(tmpdir(), 'kvkit-gguf-bad-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let count = 0
let source: DirectorySource | undefined
afterAll(() => source?.close())

async function open(bytes: Uint8Array): Promise<GgufFile> {
  const name = `t${count++}.gguf`
  writeFileSync(join(dir, name), bytes)
  source ??= await DirectorySource.open(dir)
  return GgufFile.open(source, name)
}
async function openError(bytes: Uint8Array): Promise<string> {
  try {
    await open(bytes)
  } catch (e) {
    expect(e).toBeInstanceOf(ModelLoadError)
    return (e as Error).message
  }
  throw new Error('expected a ModelLoadError')
}

/** a GGUF header by hand: little-endian pieces */
const le = {
  u32: (v: number) => new Uint8Array(Uint32Array.of(v).buffer),
  u64: (v: bigint | number) => new Uint8Array(BigUint64Array.of(BigInt(v)).buffer),
  str: (s: string) => {
    const b = new TextEncoder().encode(s)
    return cat(le.u64(b.length), b)
  },
}
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0))
  let at = 0
  for (const p of parts) [out.set(p, at), (at += p.length)]
  return out
}
/** magic, version, counts, then `rest`, then `pad` zero bytes of "data" */
const header = (version: number, tensors: number | bigint, kvs: number | bigint, rest: Uint8Array = new Uint8Array(0), pad = 64) =>
  cat(new TextEncoder().encode('GGUF'), le.u32(version), le.u64(tensors), le.u64(kvs), rest, new Uint8Array(pad))
const kv = (key: string, type: number, value: Uint8Array) => cat(le.str(key), le.u32(type), value)
const tensor = (name: string, ne: number[], type: number, offset: number) => cat(le.str(name), le.u32(ne.length), ...ne.map((n) => le.u64(n)), le.u32(type), le.u64(offset))

describe('GGUF headers that lie', () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ['an empty file', new Uint8Array(0), /too short for a GGUF file/],
    ['a safetensors file', cat(le.u64(20), new TextEncoder().encode('{"a": 1}          ')), /not a GGUF file/],
    ['version 1', header(1, 0, 0), /GGUF version 1 is not supported .*64-bit counts/],
    ['a big-endian file', header(0x03000000, 0, 0), /version 50331648 .*big-endian/],
    ['a huge tensor count', header(3, 1n << 40n, 0), /cannot fit in/],
    ['a count above 2^53', header(3, 1n << 60n, 0), /tensor count .* is beyond any file/],
    ['a huge metadata count', header(3, 0, 1e9), /1000000000 metadata pairs .* cannot fit/],
    ['a key longer than the file', header(3, 0, 1, le.u64(1e6)), /metadata key 0 of 1000000 bytes runs past the end/],
    ['a key that is not UTF-8', header(3, 0, 1, cat(le.u64(2), Uint8Array.of(0xc3, 0x28), le.u32(4), le.u32(1))), /metadata key 0 is not valid UTF-8/],
    ['an unknown value type', header(3, 0, 1, kv('a', 13, le.u32(0))), /metadata "a" has unknown value type 13/],
    ['an array longer than the file', header(3, 0, 1, kv('a', 9, cat(le.u32(4), le.u64(1e8)))), /metadata "a" declares 100000000 elements/],
    ['arrays nested too deep', header(3, 0, 1, kv('a', 9, cat(le.u32(9), le.u64(1), le.u32(9), le.u64(1), le.u32(4), le.u64(1), le.u32(0)))), /nests arrays deeper than 2/],
    ['a duplicate key', header(3, 0, 2, cat(kv('a', 4, le.u32(1)), kv('a', 4, le.u32(2)))), /metadata key "a" appears twice/],
    ['a header cut short', header(3, 1, 1, kv('general.architecture', 8, le.str('llama')), 0), /runs past the end/],
    ['a tensor with 0 dimensions', header(3, 1, 0, tensor('w', [], 0, 0)), /tensor "w" has 0 dimensions/],
    ['a tensor with 5 dimensions', header(3, 1, 0, tensor('w', [1, 1, 1, 1, 1], 0, 0)), /tensor "w" has 5 dimensions/],
    ['a tensor past the end', header(3, 1, 0, tensor('w', [64], GGML_TYPE.F32, 0)), /tensor "w": 256 bytes at data offset 0 lie outside/],
    ['a misaligned tensor', header(3, 1, 0, tensor('w', [4], GGML_TYPE.F32, 4)), /offset 4 is not a multiple of the alignment 32/],
    ['an alignment that is not a power of two', header(3, 0, 1, kv('general.alignment', 4, le.u32(24))), /general.alignment "24" is not a power of two/],
    ['overlapping tensors', header(3, 2, 0, cat(tensor('a', [16], GGML_TYPE.F32, 0), tensor('b', [16], GGML_TYPE.F32, 32)), 160), /tensors "a" and "b" overlap/],
    ['a tensor twice', header(3, 2, 0, cat(tensor('a', [4], GGML_TYPE.F32, 0), tensor('a', [4], GGML_TYPE.F32, 32)), 160), /tensor "a" appears twice/],
    ['a huge declared shape', header(3, 1, 0, tensor('w', [1 << 30, 1 << 30, 1 << 30], GGML_TYPE.F32, 0)), /declares more elements than the file holds/],
    ['rows that are not whole blocks', header(3, 1, 0, tensor('w', [48, 2], GGML_TYPE.Q8_0, 0), 256), /rows of 48 elements are not whole Q8_0 blocks of 32/],
  ]
  it.each(cases)('%s', async (_name, bytes, message) => {
    expect(await openError(bytes)).toMatch(message)
  })

  it('a tensor type kvkit does not dequantize is named when read (Q4_K), not at open', async () => {
    const f = await open(header(3, 1, 0, tensor('w', [256], GGML_TYPE_Q4_K, 0), 256))
    await expect(f.read(f.tensors.get('w')!, new Float32Array(256))).rejects.toThrow(/tensor "w" is ggml Q4_K; kvkit loads F32, F16, BF16, Q8_0 and Q4_0/)
  })

  it('random byte flips and truncations of a valid file end in a clear error or a parse that reads inside the file', async () => {
    const good = writeGguf(
      { 'general.architecture': str('llama'), 'a.list': { type: 9, subType: 8, value: ['x', 'yz', ''] } as GgufValue, 'a.f': f32(1.5) },
      [
        { name: 'q', type: GGML_TYPE.Q8_0, shape: [2, 32], data: new Float32Array(64).fill(0.5) },
        { name: 'h', type: GGML_TYPE.F16, shape: [3], data: new Float32Array(3) },
        { name: 'n', type: GGML_TYPE.Q4_0, shape: [32], data: new Float32Array(32).fill(-1) },
      ],
    )
    let s = 2024
    const rand = (n: number) => (s = (s * 1103515245 + 12345) >>> 0) % n
    let parsed = 0
    for (let trial = 0; trial < 300; trial++) {
      const bytes = good.slice(0, trial % 3 === 0 ? rand(good.length) : good.length)
      for (let f = 0; f < 1 + rand(4); f++) if (bytes.length) bytes[rand(bytes.length)] = rand(256)
      let file: GgufFile
      try {
        file = await open(bytes)
      } catch (e) {
        expect(e).toBeInstanceOf(ModelLoadError)
        continue
      }
      parsed++
      for (const t of file.tensors.values()) {
        expect(t.end).toBeLessThanOrEqual(bytes.length)
        const n = t.shape.reduce((a, b) => a * b, 1)
        await file.read(t, new Float32Array(n)).catch((e) => expect(e).toBeInstanceOf(ModelLoadError))
      }
    }
    expect(parsed).toBeGreaterThan(30)
  })
})
const GGML_TYPE_Q4_K = 12

describe('GGUF metadata with bad values', () => {
  /** the smallest llama metadata that loads up to the weights, with `edit` applied (null removes a key) */
  const base: Record<string, GgufValue> = {
    'general.architecture': str('llama'),
    'llama.context_length': u32(64), 'llama.embedding_length': u32(32), 'llama.block_count': u32(1), 'llama.feed_forward_length': u32(64),
    'llama.attention.head_count': u32(4), 'llama.attention.head_count_kv': u32(2), 'llama.rope.freq_base': f32(10000),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5), 'llama.vocab_size': u32(16),
    'tokenizer.ggml.model': str('gpt2'), 'tokenizer.ggml.tokens': { type: 9, subType: 8, value: Array.from({ length: 16 }, (_, i) => `t${i}`) } as GgufValue,
    'tokenizer.ggml.merges': { type: 9, subType: 8, value: [] } as GgufValue,
  }
  const i32 = (v: number): GgufValue => ({ type: 5, value: v })
  it.each([
    ['general.architecture', str('gpt2'), /general.architecture "gpt2" is not supported; supported: llama, qwen2/],
    ['llama.block_count', u32(0), /llama.block_count must be a positive integer, got 0/],
    ['llama.block_count', i32(-3), /llama.block_count must be a positive integer, got -3/],
    ['llama.block_count', str('8'), /llama.block_count must be a positive integer, got "8"/],
    ['llama.context_length', null, /llama.context_length must be a positive integer, got nothing \(missing\)/],
    ['llama.attention.head_count_kv', u32(3), /num_attention_heads 4 is not a multiple of num_key_value_heads 3 \(from the GGUF metadata\)/],
    ['llama.rope.freq_base', f32(-1), /llama.rope.freq_base must be a positive number, got -1/],
    ['llama.rope.dimension_count', u32(4), /llama.rope.dimension_count 4 rotates part of a 8-wide head/],
    ['llama.rope.scaling.type', str('yarn'), /llama.rope.scaling.type "yarn" is not supported/],
    ['tokenizer.ggml.bos_token_id', u32(16), /tokenizer.ggml.bos_token_id = 16 is not a token id in \[0, 16\)/],
    ['tokenizer.ggml.pre', str('llama-bpe'), /tokenizer.ggml.pre "llama-bpe" cannot be rebuilt .* tokenizer.json beside/],
    ['tokenizer.ggml.tokens', { type: 9, subType: 8, value: ['a', 'a'] } as GgufValue, /tokenizer.ggml.tokens holds "a" twice \(ids 0 and 1\)/],
    ['tokenizer.ggml.merges', { type: 9, subType: 8, value: ['a b c'] } as GgufValue, /tokenizer.ggml.merges\[0\] "a b c" is not two tokens/],
  ] as const)('%s = %j: a ModelLoadError naming the key and the value, before any weight is read', async (key, v, message) => {
    const md = { ...base }
    if (v === null) delete md[key]
    else md[key] = v
    const path = join(dir, `md${count++}.gguf`)
    // no tensors at all: an error about the weights would mean the metadata was not checked first
    writeFileSync(path, writeGguf(md, []))
    await expect(loadModel(path, { backend: 'reference' })).rejects.toThrow(message)
    await expect(loadModel(path, { backend: 'reference' })).rejects.toBeInstanceOf(ModelLoadError)
  })

  it('the same metadata, good: the load gets as far as the first missing tensor', async () => {
    const path = join(dir, `md${count++}.gguf`)
    writeFileSync(path, writeGguf(base, []))
    await expect(loadModel(path, { backend: 'reference' })).rejects.toThrow(/tensor token_embd.weight is missing/)
  })

  it('a tensor whose shape disagrees with the metadata is named with both shapes', async () => {
    const path = join(dir, `md${count++}.gguf`)
    writeFileSync(path, writeGguf(base, [{ name: 'token_embd.weight', type: GGML_TYPE.F32, shape: [16, 64], data: new Float32Array(16 * 64) }]))
    await expect(loadModel(path, { backend: 'reference' })).rejects.toThrow(/token_embd.weight has shape \[16,64\], the metadata implies \[16,32\]/)
  })

  it('a FIFO given as the model path is refused without opening it', async () => {
    const fifo = join(dir, 'pipe.gguf')
    execFileSync('mkfifo', [fifo])
    await expect(loadModel(fifo, { backend: 'reference' })).rejects.toThrow(/is a FIFO, not a regular file/)
  })
})

describe('an independent parser reads the same header', () => {
  it('@huggingface/gguf finds the same metadata and tensor infos in the converted fixture', async () => {
    const bytes = await fixtureGguf('q8_0')
    const path = join(dir, 'fixture-q8_0.gguf')
    writeFileSync(path, bytes)
    const ours = await open(bytes)
    const theirs = await hfGguf(path, { allowLocalFile: true })
    const norm = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v)
    for (const [k, v] of Object.entries(ours.metadata)) expect(norm((theirs.metadata as Record<string, unknown>)[k]), k).toEqual(v)
    expect(theirs.tensorInfos.length).toBe(ours.tensors.size)
    for (const t of theirs.tensorInfos) {
      const o = ours.tensors.get(t.name)!
      expect(o.shape).toEqual(t.shape.map(Number).reverse())
      expect(o.type).toBe(t.dtype)
      expect(o.begin).toBe(Number(theirs.tensorDataOffset + t.offset))
    }
  })
})

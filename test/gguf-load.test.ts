import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel as loadModelRoot } from '../src/index.js'
import { ModelLoadError } from '../src/model/errors.js'
import { GgufFile } from '../src/model/gguf.js'
import { GGML_TYPE, toF16 } from '../src/model/ggml.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { DirectorySource } from '../src/node/directory.js'
import { quantizeQ4_0, quantizeQ8_0 } from '../tools/ggml-quantize.js'
import { FIXTURE, argmax, fixtureGguf, maxAbsDiff, writeFixtureGguf } from './gguf-helpers.js'
import { serveStatic } from './static-server.js'

// GGUF files of the fixture, written by tools/gguf-convert.ts, load into kvkit with the same forward pass
// as the safetensors folder: F32/F16 give the same float32 weights (so the same logits, bit for bit), the
// quantized types their dequantized weights.
const dir = mkdtempSync(join(tmpdir(), 'kvkit-gguf-'))
const golden = JSON.parse(readFileSync(join(FIXTURE, 'golden.json'), 'utf8')) as { input_ids: number[]; logits_first8_per_pos: number[][]; last_logits_top10: number[] }
const V = 4096
let ref: LlamaModel
let refLogits: Float32Array
const logitsOf = new Map<string, Float32Array>()

beforeAll(async () => {
  ref = await loadModel(FIXTURE, { backend: 'wasm' })
  refLogits = ref.logits(golden.input_ids)
  for (const t of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const) {
    const m = await loadModel(await writeFixtureGguf(dir, t), { backend: 'wasm' })
    logitsOf.set(t, m.logits(golden.input_ids))
    m.dispose()
  }
}, 120_000)
afterAll(() => {
  ref?.dispose()
  rmSync(dir, { recursive: true, force: true })
})

const relRms = (x: Float32Array, y: Float32Array) => {
  let num = 0
  let den = 0
  for (let i = 0; i < x.length; i++) [num, den] = [num + (x[i] - y[i]) ** 2, den + y[i] ** 2]
  return Math.sqrt(num / den)
}
const argmaxAgreement = (x: Float32Array, y: Float32Array) =>
  golden.input_ids.filter((_, p) => argmax(x.subarray(p * V, (p + 1) * V)) === argmax(y.subarray(p * V, (p + 1) * V))).length

describe('GGUF weights reproduce the safetensors logits', () => {
  it.each(['f32', 'f16'] as const)('%s: the same logits as the safetensors folder, bit for bit, and golden.json within 1e-4', (t) => {
    const x = logitsOf.get(t)!
    expect(maxAbsDiff(x, refLogits)).toBe(0)
    for (let p = 0; p < golden.input_ids.length; p++) expect(maxAbsDiff(x.subarray(p * V, p * V + 8), golden.logits_first8_per_pos[p])).toBeLessThan(1e-4)
    const last = x.subarray((golden.input_ids.length - 1) * V)
    expect([...last.keys()].sort((a, b) => last[b] - last[a]).slice(0, 10)).toEqual(golden.last_logits_top10)
  })

  // measured: bf16 0.003, q8_0 0.012, q4_0 0.17 relative RMS; q4_0 keeps the top token at 21 of 30
  // positions on this 14M-parameter model (small models lose most to 4-bit weights)
  it.each([
    ['bf16', 0.01, 30],
    ['q8_0', 0.03, 30],
    ['q4_0', 0.25, 18],
  ] as const)('%s: logits within relative RMS %s of the safetensors ones, the top token kept at >= %s of 30 positions', (t, rms, agree) => {
    const x = logitsOf.get(t)!
    expect(relRms(x, refLogits)).toBeLessThan(rms)
    expect(relRms(x, refLogits)).toBeGreaterThan(0)
    expect(argmaxAgreement(x, refLogits)).toBeGreaterThanOrEqual(agree)
  })

  it('error grows with fewer bits: bf16 < q8_0 < q4_0', () => {
    const e = ['bf16', 'q8_0', 'q4_0'].map((t) => relRms(logitsOf.get(t)!, refLogits))
    expect(e[0]).toBeLessThan(e[1])
    expect(e[1]).toBeLessThan(e[2])
  })
})

/** ggml's dequantization written out plainly from the block layout (ggml-quants.c), as the twin */
function twinDequant(type: number, bytes: Uint8Array, n: number): Float32Array {
  const half = (h: number) => {
    const e = (h >> 10) & 31
    const f = h & 1023
    const s = h & 0x8000 ? -1 : 1
    return e === 0 ? s * f * 2 ** -24 : s * (1 + f / 1024) * 2 ** (e - 15)
  }
  const out = new Float32Array(n)
  const bs = type === GGML_TYPE.Q8_0 ? 34 : 18
  for (let b = 0; b < n / 32; b++) {
    const d = half(bytes[b * bs] | (bytes[b * bs + 1] << 8))
    for (let j = 0; j < 32; j++) {
      if (type === GGML_TYPE.Q8_0) out[32 * b + j] = ((bytes[b * bs + 2 + j] << 24) >> 24) * d
      else out[32 * b + j] = (j < 16 ? (bytes[b * bs + 2 + j] & 15) - 8 : (bytes[b * bs + 2 + j - 16] >> 4) - 8) * d
    }
  }
  return out
}

describe('quantized tensors', () => {
  // each value is off by at most half a scale step (q8_0) or one step (q4_0, whose largest value is
  // clamped), plus what the float16 rounding of the scale (2^-11 relative) moves the farthest code (127 or 8)
  it.each([
    ['q8_0: each value within 0.5 scale steps of the float16 weight', GGML_TYPE.Q8_0, 0.5 + 127 * 2 ** -11],
    ['q4_0: each value within 1 scale step of the float16 weight', GGML_TYPE.Q4_0, 1 + 8 * 2 ** -11],
  ] as const)('%s, and read exactly as the twin dequantizes the file bytes', async (_name, type, steps) => {
    const t = type === GGML_TYPE.Q8_0 ? 'q8_0' : 'q4_0'
    await writeFixtureGguf(dir, 'f16')
    await writeFixtureGguf(dir, t)
    const source = await DirectorySource.open(dir)
    const f16 = await GgufFile.open(source, 'fixture-f16.gguf')
    const q = await GgufFile.open(source, `fixture-${t}.gguf`)
    for (const name of ['blk.0.ffn_down.weight', 'blk.7.attn_v.weight', 'token_embd.weight']) {
      const info = q.tensors.get(name)!
      expect(info.type).toBe(type)
      const n = info.shape.reduce((a, b) => a * b, 1)
      const got = new Float32Array(n)
      await q.read(info, got)
      const bytes = new Uint8Array(info.end - info.begin)
      await source.read(q.name, info.begin, bytes)
      expect(maxAbsDiff(got, twinDequant(type, bytes, n))).toBe(0)
      const w = new Float32Array(n)
      await f16.read(f16.tensors.get(name)!, w)
      const bs = type === GGML_TYPE.Q8_0 ? 34 : 18
      let worst = 0
      for (let b = 0; b < n / 32; b++) {
        const scale = new Uint8Array(bs)
        scale.set(bytes.subarray(b * bs, b * bs + 2))
        scale.fill(type === GGML_TYPE.Q8_0 ? 1 : 0x99, 2)
        const d = Math.abs(twinDequant(type, scale, 32)[0])
        for (let j = 0; j < 32; j++) if (d > 0) worst = Math.max(worst, Math.abs(got[32 * b + j] - w[32 * b + j]) / d)
      }
      expect(worst, name).toBeLessThanOrEqual(steps)
      expect(worst, name).toBeGreaterThan(steps / 4)
    }
    await source.close()
  })

  it('hand-computed blocks: q8_0 of 0..31 and q4_0 of -8..7 (twice) round-trip as ggml says', () => {
    const ramp = Float32Array.from({ length: 32 }, (_, i) => i)
    const q8 = quantizeQ8_0(ramp)
    // d = 31/127 stored as float16; each value i -> round(i * 127/31)
    expect(q8[0] | (q8[1] << 8)).toBe(toF16(31 / 127))
    expect([...q8.subarray(2, 6)]).toEqual([0, 4, 8, 12])
    expect((q8[2 + 31] << 24) >> 24).toBe(127)
    const signed = Float32Array.from({ length: 32 }, (_, i) => (i % 16) - 8)
    const q4 = quantizeQ4_0(signed)
    // max magnitude -8 -> d = -8 / -8 = 1; x -> x + 8 in nibbles
    expect(q4[0] | (q4[1] << 8)).toBe(toF16(1))
    expect(twinDequant(GGML_TYPE.Q4_0, q4, 32)).toEqual(signed)
  })
})

describe('where a GGUF file comes from', () => {
  it.each([
    ['a path (kvkit/node)', async () => loadModel(await writeFixtureGguf(dir, 'f16'), { backend: 'wasm' })],
    ['a file: URL (kvkit/node)', async () => loadModel(new URL(`file://${await writeFixtureGguf(dir, 'f16')}`), { backend: 'wasm' })],
    ['its bytes (root entry)', async () => loadModelRoot(await fixtureGguf('f16'), { backend: 'wasm' })],
    ['an ArrayBuffer (root entry)', async () => loadModelRoot((await fixtureGguf('f16')).slice().buffer, { backend: 'wasm' })],
    ['a Blob (root entry)', async () => loadModelRoot(new Blob([(await fixtureGguf('f16')).slice()]), { backend: 'wasm' })],
    ['picked files with one .gguf (root entry)', async () => loadModelRoot({ 'my-model.gguf': await fixtureGguf('f16') }, { backend: 'wasm' })],
  ])('%s: the fixture logits', async (_name, load) => {
    const m = await load()
    expect(maxAbsDiff(m.logits(golden.input_ids.slice(0, 8)), refLogits.subarray(0, 8 * V))).toBe(0)
    m.dispose()
  })

  it('a URL ending in .gguf (root entry, over HTTP): the fixture logits, and progress for the file', async () => {
    await writeFixtureGguf(dir, 'f16')
    const server = await serveStatic({ '/m/': dir })
    try {
      const seen = new Set<string>()
      const m = await loadModelRoot(`${server.url}/m/fixture-f16.gguf`, { backend: 'wasm', onProgress: (p) => seen.add(p.file) })
      expect(maxAbsDiff(m.logits(golden.input_ids.slice(0, 8)), refLogits.subarray(0, 8 * V))).toBe(0)
      expect(seen.has('fixture-f16.gguf')).toBe(true)
      m.dispose()
    } finally {
      await server.close()
    }
  })

  it('two .gguf files among picked files: refused, naming both', async () => {
    const b = await fixtureGguf('f16')
    await expect(loadModelRoot({ 'a.gguf': b, 'b.gguf': b }, { backend: 'wasm' })).rejects.toThrow(/2 GGUF files \(a.gguf, b.gguf\)/)
  })
})

describe('the tokenizer of a GGUF file', () => {
  const texts = ['The quick brown fox, said Mr. Holmes.', '\n\nQuestion: What is the pass key?\nAnswer:', 'naïve café — 1234567 “quotes”', '<|endoftext|> after a special token', '  two  spaces\tand a tab', '']
  it('from the metadata: each text encodes and decodes as tokenizer.json does', async () => {
    const m = await loadModelRoot(await fixtureGguf('q4_0'), { backend: 'wasm' })
    for (const text of texts) {
      expect(m.tokenizer.encode(text), JSON.stringify(text)).toEqual(ref.tokenizer.encode(text))
      expect(m.tokenizer.decode(ref.tokenizer.encode(text))).toEqual(ref.tokenizer.decode(ref.tokenizer.encode(text)))
    }
    // the special token's text is the special token, in both
    expect(m.tokenizer.encode(texts[3])[0]).toBe(0)
    m.dispose()
  })

  it('a tokenizer.json beside the file is used; without one an unsupported metadata tokenizer is refused by name', async () => {
    const bytes = await fixtureGguf('q4_0')
    // the same file with tokenizer.ggml.model "gpt2" -> "llama" (same length, so offsets stay)
    const at = Buffer.from(bytes).indexOf('gpt2')
    const patched = Uint8Array.from(bytes)
    patched.set(new TextEncoder().encode('ggml'), at)
    const sub = join(dir, 'beside')
    rmSync(sub, { recursive: true, force: true })
    const path = await writeFixtureGguf(sub, 'q4_0')
    writeFileSync(path, patched)
    await expect(loadModel(path, { backend: 'wasm' })).rejects.toThrow(/tokenizer.ggml.model "ggml" .* put the model's tokenizer.json beside the .gguf file/)
    await expect(loadModel(path, { backend: 'wasm' })).rejects.toBeInstanceOf(ModelLoadError)
    copyFileSync(join(FIXTURE, 'tokenizer.json'), join(sub, 'tokenizer.json'))
    const m = await loadModel(path, { backend: 'wasm' })
    expect(m.tokenizer.encode(texts[0])).toEqual(ref.tokenizer.encode(texts[0]))
    m.dispose()
    unlinkSync(join(sub, 'tokenizer.json'))
  })
})

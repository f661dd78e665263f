/**
 * Kind 7 of issue 8: a model folder is untrusted. Refused with a ModelLoadError naming the file, before
 * anything is read or allocated:
 * - any file the loader opens that is not a regular file (a symlink to /dev/zero, a FIFO, a directory);
 * - bos/eos/pad token ids outside the vocabulary or of the wrong type;
 * - weights that cannot fit in wasm memory (size from the config and headers, checked before allocating).
 * A forward pass that produces non-finite values is a NonFiniteError naming the first layer it came from.
 */
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/backend/index.js'
import { ModelLoadError, NonFiniteError } from '../src/model/errors.js'
import { loadModel } from '../src/node/load.js'
import { makeTinyModel } from './tiny-model.js'

const base = makeTinyModel({ eos_token_id: null })
const copy = () => {
  const d = mkdtempSync(join(tmpdir(), 'kvkit-untrusted-'))
  cpSync(base, d, { recursive: true })
  return d
}

describe('files that are not regular files', () => {
  const KINDS: [string, (p: string) => void][] = [
    ['a symlink to /dev/zero', (p) => symlinkSync('/dev/zero', p)],
    ['a FIFO', (p) => expect(spawnSync('mkfifo', [p]).status).toBe(0)],
    ['a directory', (p) => mkdirSync(p)],
  ]
  it('file x kind: refused naming the file, without hanging or reading', async () => {
    let cases = 0
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
      for (const [kind, make] of KINDS) {
        const dir = copy()
        rmSync(join(dir, file), { force: true })
        make(join(dir, file))
        await expect(loadModel(dir, { backend: 'wasm' }), `${file} as ${kind}`).rejects.toThrow(ModelLoadError)
        await expect(loadModel(dir, { backend: 'wasm' })).rejects.toThrow(file)
        rmSync(dir, { recursive: true, force: true })
        cases++
      }
    }
    expect(cases).toBe(12)
  })
})

describe('special token ids', () => {
  it('field x bad value: a load error naming the field; good values load', async () => {
    const cfg = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'))
    let cases = 0
    for (const field of ['bos_token_id', 'eos_token_id', 'pad_token_id', 'eos_token_id list']) {
      for (const bad of [-1, 4096, 1.5, '1', true]) {
        const dir = copy()
        const value = field.endsWith('list') ? [2, bad] : bad
        writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, [field.split(' ')[0]]: value }))
        await expect(loadModel(dir, { backend: 'wasm' }), `${field} = ${JSON.stringify(bad)}`).rejects.toThrow(new RegExp(field.split(' ')[0]))
        rmSync(dir, { recursive: true, force: true })
        cases++
      }
    }
    expect(cases).toBe(20)
    const dir = copy()
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, bos_token_id: 1, eos_token_id: [2, 4095] }))
    const m = await loadModel(dir, { backend: 'wasm' })
    expect([m.config.bosTokenId, m.config.eosTokenIds]).toEqual([1, [2, 4095]])
    m.dispose()
  })
})

describe('weights larger than wasm memory', () => {
  it('refused from the config and headers with the arena untouched', async () => {
    const be = await createBackend('wasm')
    const dir = copy()
    const cfg = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'))
    for (const over of [{ intermediate_size: 1 << 24 }, { vocab_size: 1 << 24, tie_word_embeddings: false }]) {
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, ...over }))
      const before = be.heap.memory.buffer.byteLength
      await expect(loadModel(dir, { backendInstance: be }), JSON.stringify(over)).rejects.toThrow(/more than the .* bytes left in wasm memory/)
      expect(be.heap.memory.buffer.byteLength).toBe(before)
    }
  })
})

describe('non-finite values', () => {
  it('poisoned layer x tensor: logits and generate name the first layer', async () => {
    let cases = 0
    for (const layer of [0, 1, 3]) {
      for (const tensor of ['self_attn.v_proj.weight', 'mlp.down_proj.weight']) {
        const m = await loadModel(makeTinyModel({ eos_token_id: null }, 3, `model.layers.${layer}.${tensor}`), { backend: 'wasm' })
        expect(() => m.logits([5, 6, 7]), `${layer} ${tensor}`).toThrow(NonFiniteError)
        expect(() => m.logits([5, 6, 7])).toThrow(new RegExp(`first in layer ${layer} `))
        await expect(m.generate([5, 6, 7], { maxNewTokens: 2 }).result).rejects.toThrow(new RegExp(`first in layer ${layer} `))
        m.dispose()
        cases++
      }
    }
    expect(cases).toBe(6)
  })
})

/**
 * kvkit/node's loadModel given a path that is not a model says what it found and what it expects (a
 * Hugging Face model folder or a .gguf file), and for a file of a model folder, the folder to pass:
 * a folder's config.json was "not a GGUF file (it starts with 7b 0a 20 20 ...)", and a folder with
 * no config.json or no weights named one missing file and nothing of what a model folder is. The root
 * entry's loadModel of one file's bytes (read as GGUF) says what they are too.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { loadModel as loadModelRoot } from '../src/model/load.js'
import { ModelLoadError } from '../src/model/errors.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-model-path-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const fixture = 'models/fixture-14m'
const EXPECTS = 'loadModel expects a Hugging Face model folder (config.json, tokenizer.json, and model.safetensors or model.safetensors.index.json with its shards) or a .gguf file'
/** a folder holding the named files of the fixture (copied) and others (written) */
function folder(name: string, copied: string[], written: Record<string, string> = {}): string {
  const d = join(dir, name)
  mkdirSync(d)
  for (const f of copied) copyFileSync(join(fixture, f), join(d, f))
  for (const [f, text] of Object.entries(written)) writeFileSync(join(d, f), text)
  return d
}
const refused = async (path: string) => {
  const e = await loadModel(path, { backend: 'reference', threads: 1 }).then(() => null, (x: unknown) => x)
  expect(e).toBeInstanceOf(ModelLoadError)
  return (e as Error).message
}

describe('loadModel of a path that is not a model', () => {
  it("a folder's config.json: a JSON file, not GGUF; pass the folder", async () => {
    const path = join(fixture, 'config.json')
    expect(await refused(path)).toBe(`${path} is not a GGUF file: it is a JSON file. ${EXPECTS}; config.json is one file of a model folder: pass the folder, ${fixture}`)
  })

  it("a folder's safetensors shard: a safetensors file, not GGUF; pass the folder", async () => {
    const path = join(fixture, 'model-00001-of-00002.safetensors')
    expect(await refused(path)).toBe(`${path} is not a GGUF file: it is a safetensors file. ${EXPECTS}; model-00001-of-00002.safetensors is one file of a model folder: pass the folder, ${fixture}`)
  })

  it('another file: its first bytes, and what was expected', async () => {
    const text = join(dir, 'notes.txt')
    writeFileSync(text, 'hello')
    expect(await refused(text)).toBe(`${text} is not a GGUF file: it is a file starting with 68 65 6c 6c, not "GGUF". ${EXPECTS}`)
    const empty = join(dir, 'empty.gguf')
    writeFileSync(empty, '')
    expect(await refused(empty)).toBe(`${empty} is not a GGUF file: it is an empty file. ${EXPECTS}`)
  })

  it('a folder with config.json alone: the missing tokenizer.json, what it holds', async () => {
    const d = folder('config-only', ['config.json'])
    expect(await refused(d)).toBe(`missing file: ${join(d, 'tokenizer.json')}. ${EXPECTS}; it holds config.json`)
  })

  it('a safetensors folder without weights: says so, and what it holds', async () => {
    const d = folder('no-weights', ['config.json', 'tokenizer.json', 'generation_config.json'])
    expect(await refused(d)).toBe(`${d}: no model.safetensors or model.safetensors.index.json. ${EXPECTS}; it holds config.json, generation_config.json, tokenizer.json`)
  })

  it('a folder holding a .gguf file and no config.json: pass the file', async () => {
    const d = folder('gguf-folder', [], { 'model-q8_0.gguf': 'GGUF' })
    expect(await refused(d)).toBe(`missing file: ${join(d, 'config.json')}. ${EXPECTS}; it holds model-q8_0.gguf; for its GGUF file pass the file, ${join(d, 'model-q8_0.gguf')}`)
  })

  it('an empty folder', async () => {
    const d = folder('empty', [])
    expect(await refused(d)).toBe(`missing file: ${join(d, 'config.json')}. ${EXPECTS}; it is empty`)
  })

  it('the model folder itself still loads', async () => {
    const model = await loadModel(fixture, { backend: 'reference', threads: 1 })
    expect(model.config.layers).toBeGreaterThan(0)
    model.dispose()
  })
})

describe("the root entry's loadModel of one file's bytes that are not GGUF", () => {
  it.each([
    ['config.json', 'a JSON file'],
    ['model-00002-of-00002.safetensors', 'a safetensors file'],
  ])('%s: says it is %s, and what loadModel expects', async (name, kind) => {
    const e = await loadModelRoot(new Blob([readFileSync(join(fixture, name)).subarray(0, 4096)]), { backend: 'reference' }).then(() => null, (x: unknown) => x)
    expect(e).toBeInstanceOf(ModelLoadError)
    expect((e as Error).message).toBe(`model.gguf (picked file): not a GGUF file: it is ${kind}. ${EXPECTS}`)
  })
})

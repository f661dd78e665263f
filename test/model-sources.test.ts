import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel as loadAnywhere } from '../src/model/load.js'
import { loadModel } from '../src/node/load.js'
import { ModelInputError, ModelLoadError } from '../src/model/errors.js'
import type { LoadProgress } from '../src/model/source.js'
import type { LlamaModel } from '../src/model/model.js'
import { createBackend } from '../src/backend/index.js'
import { serveStatic } from './static-server.js'

const DIR = 'models/fixture-14m'
const FILES = readdirSync(DIR).filter((f) => /\.(json|safetensors)$/.test(f) && f !== 'golden.json')
const PROMPT = [0, 464, 2068, 586, 1831]

let server: Awaited<ReturnType<typeof serveStatic>>
let reference: LlamaModel
let backend: Awaited<ReturnType<typeof createBackend>>
beforeAll(async () => {
  // the Hugging Face hub layout: https://huggingface.co/ORG/NAME/resolve/main/FILE
  server = await serveStatic({ '/kvkit/fixture-14m/resolve/main/': DIR })
  backend = await createBackend('wasm')
  reference = await loadModel(DIR, { backendInstance: backend })
})
afterAll(async () => {
  reference?.dispose()
  await server?.close()
})

/** per file, the last progress event: loaded must reach the file's size, never pass it, never go back */
function checkProgress(events: LoadProgress[]): void {
  const last = new Map<string, LoadProgress>()
  for (const e of events) {
    const prev = last.get(e.file)
    if (prev) expect(e.loaded).toBeGreaterThanOrEqual(prev.loaded)
    expect(e.loaded).toBeLessThanOrEqual(e.total)
    last.set(e.file, e)
  }
  for (const f of ['config.json', 'tokenizer.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    const size = readFileSync(join(DIR, f)).length
    expect(last.get(f), f).toEqual({ file: f, loaded: size, total: size })
  }
}

describe('loadModel from anywhere', () => {
  const sources: [string, () => Parameters<typeof loadAnywhere>[0]][] = [
    ['a hub-style base URL (string, no trailing slash)', () => `${server.url}/kvkit/fixture-14m/resolve/main`],
    ['a URL object', () => new URL(`${server.url}/kvkit/fixture-14m/resolve/main/`)],
    ['a map of name -> Blob', () => new Map(FILES.map((f) => [f, new Blob([readFileSync(join(DIR, f))])]))],
    ['a record of name -> ArrayBuffer', () => Object.fromEntries(FILES.map((f) => [f, new Uint8Array(readFileSync(join(DIR, f))).buffer]))],
    ['File objects (as an <input type=file> gives them)', () => FILES.map((f) => new File([readFileSync(join(DIR, f))], f))],
  ]
  it.each(sources)('%s: the same logits as the folder, with progress per file', async (_name, input) => {
    const events: LoadProgress[] = []
    const m = await loadAnywhere(input(), { backendInstance: backend, onProgress: (p) => events.push(p) })
    try {
      expect(m.logits(PROMPT)).toEqual(reference.logits(PROMPT))
    } finally {
      m.dispose()
    }
    checkProgress(events)
  })

  it('a folder reports progress too (kvkit/node)', async () => {
    const events: LoadProgress[] = []
    const m = await loadModel(DIR, { backendInstance: backend, onProgress: (p) => events.push(p) })
    m.dispose()
    checkProgress(events)
  })

  it('an abort mid-download rejects with the reason and leaves the arena as it was', async () => {
    const before = backend.heap.bytesLive
    const ctrl = new AbortController()
    const load = loadAnywhere(`${server.url}/kvkit/fixture-14m/resolve/main/`, {
      backendInstance: backend, signal: ctrl.signal,
      onProgress: (p) => { if (p.file.endsWith('.safetensors') && p.loaded > 1 << 20) ctrl.abort(new Error('user cancelled')) },
    })
    await expect(load).rejects.toThrow('user cancelled')
    expect(backend.heap.bytesLive).toBe(before)
  })

  it("an abort while a folder's weights stream into the arena frees what was allocated", async () => {
    const before = backend.heap.bytesLive
    const ctrl = new AbortController()
    let peak = 0
    const load = loadModel(DIR, {
      backendInstance: backend, signal: ctrl.signal,
      onProgress: (p) => {
        peak = Math.max(peak, backend.heap.bytesLive - before)
        if (p.file === 'model-00002-of-00002.safetensors' && p.loaded > 1 << 20) ctrl.abort(new Error('user cancelled'))
      },
    })
    await expect(load).rejects.toThrow('user cancelled')
    expect(peak).toBeGreaterThan(1 << 20)
    expect(backend.heap.bytesLive).toBe(before)
  })

  it.each([
    ['a URL with no model there', () => `${server.url}/nothing/here/`, /missing file: http:\/\/127\.0\.0\.1:\d+\/nothing\/here\/config\.json/],
    ['picked files without the weights', () => Object.fromEntries(FILES.filter((f) => f.endsWith('.json')).map((f) => [f, new Blob([readFileSync(join(DIR, f))])])), /cannot open model-00001-of-00002\.safetensors \(picked file\): no such file/],
    ['a folder path in the browser-safe loader', () => DIR, /is not a URL; load a model folder with loadModel from 'kvkit\/node'/],
    ['a file that is not a Blob', () => ({ 'config.json': 'text' }), /config\.json must be a Blob, File, ArrayBuffer or typed array/],
  ])('%s: a ModelLoadError naming it', async (_name, input, message) => {
    const load = loadAnywhere(input() as Parameters<typeof loadAnywhere>[0], { backendInstance: backend })
    await expect(load).rejects.toThrow(message)
    await expect(loadAnywhere(input() as Parameters<typeof loadAnywhere>[0], { backendInstance: backend })).rejects.toBeInstanceOf(ModelLoadError)
  })
})

describe('loadModel options', () => {
  it.each([
    [{ backend: 'gpu' }, /unknown backend "gpu"; expected one of 'wasm', 'reference', 'webgpu', 'auto'/],
    [{ chunk: 0 }, /chunk must be an integer in \[1, 4096\], got 0/],
    [{ chunk: 1.5 }, /chunk must be an integer in \[1, 4096\], got 1\.5/],
  ])('%j: a ModelInputError naming the value before any file is read, the source closed', async (options, message) => {
    const asked: string[] = []
    let closed = false
    const source = {
      describe: (name: string) => name,
      size: async (name: string) => (asked.push(name), null),
      read: async (name: string) => void asked.push(name),
      close: async () => void (closed = true),
    }
    const load = loadAnywhere(source, options as Parameters<typeof loadAnywhere>[1])
    await expect(load).rejects.toThrow(message)
    await expect(load).rejects.toBeInstanceOf(ModelInputError)
    expect(asked).toEqual([])
    expect(closed).toBe(true)
  })
})

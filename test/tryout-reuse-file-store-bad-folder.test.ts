/**
 * FileChunkStore checks its folder when made: a dir that is not a path string (5, null, '') or a path that
 * exists and is not a folder is a ReuseError naming it. It took anything, and a regular file failed at the
 * first chunk written, after that chunk's prefill, as node's ENOTDIR from inside CacheBlend.prepare; the
 * empty string wrote chunks into the working directory. A folder not made yet is made at the first write,
 * as before, and a chunk file that is not one names its path.
 */
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { FileChunkStore } from '../src/node/file-chunk-store.js'
import { CacheBlend } from '../src/reuse/cacheblend.js'
import { ReuseError } from '../src/reuse/errors.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

const chunks = [[11, 12, 13], [21, 22, 23, 24]]

describe('FileChunkStore folder', () => {
  it('a dir that is not a path, or a file: ReuseError when made', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kvkit-store-')), 'not-a-folder')
    writeFileSync(file, 'x')
    const cases: [unknown, string][] = [
      ['', 'FileChunkStore: dir must be a folder path, got an empty string'],
      [5, 'FileChunkStore: dir must be a folder path, got number'],
      [null, 'FileChunkStore: dir must be a folder path, got null'],
      [file, `FileChunkStore: ${JSON.stringify(file)} exists and is not a folder`],
    ]
    for (const [dir, msg] of cases) {
      expect(() => new FileChunkStore(dir as string), msg).toThrow(ReuseError)
      expect(() => new FileChunkStore(dir as string), msg).toThrow(msg)
    }
  })

  it('a folder not made yet is made at the first write; a damaged chunk file names its path', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kvkit-store-')), 'a', 'b')
    const store = new FileChunkStore(dir)
    expect(existsSync(dir)).toBe(false)
    await new CacheBlend(model, { store }).prepare(chunks)
    const files = readdirSync(dir)
    expect(files.length).toBe(2)
    writeFileSync(join(dir, files[0]), 'garbage')
    const again = new CacheBlend(model, { store: new FileChunkStore(dir) })
    await expect(again.prepare(chunks)).rejects.toThrow(ReuseError)
    await expect(again.prepare(chunks)).rejects.toThrow(`FileChunkStore: ${join(dir, files[0])}: chunk bytes: 7 bytes are too few for a header`)
  })
})

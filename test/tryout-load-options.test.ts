/**
 * loadModel refuses a `signal` that is not an AbortSignal and an `onProgress` that is not a function
 * before reading any file (ModelInputError naming them), as generate does. The signal was ignored
 * silently (nothing could abort the load) and the callback failed with a TypeError midway through.
 */
import { describe, expect, it } from 'vitest'
import { loadModel as loadFolder } from '../src/node/load.js'
import { loadModel } from '../src/model/load.js'
import { ModelInputError } from '../src/model/errors.js'
import { makeTinyModel } from './tiny-model.js'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const folder = makeTinyModel()
const files = Object.fromEntries(readdirSync(folder).map((f) => [f, new Blob([readFileSync(join(folder, f))])]))

describe('loadModel options of the wrong kind', () => {
  it('signal and onProgress, from a folder and from picked files: ModelInputError, and good ones load', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ signal: 5 }, 'loadModel: signal must be an AbortSignal'],
      [{ signal: { aborted: true } }, 'loadModel: signal must be an AbortSignal'],
      [{ onProgress: 5 }, 'loadModel: onProgress must be a function, got number'],
    ]
    for (const [o, msg] of bad) {
      for (const load of [() => loadFolder(folder, { backend: 'wasm', ...o }), () => loadModel(files, { backend: 'wasm', ...o })]) {
        await expect(load(), msg).rejects.toThrow(ModelInputError)
        await expect(load(), msg).rejects.toThrow(msg)
      }
    }
    const seen: string[] = []
    const model = await loadModel(files, { backend: 'wasm', signal: new AbortController().signal, onProgress: (p) => seen.push(p.file) })
    expect(seen).toContain('config.json')
    model.dispose()
  })
})

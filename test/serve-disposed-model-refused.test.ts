/**
 * serve() and new ServeEngine() refuse a disposed model before anything starts (ModelInputError): it was
 * taken, the server listened, and every request was a 500 ('model used after dispose()'). The model says
 * whether it was disposed (`disposed`).
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { serve } from '../src/serve/http.js'
import { ServeEngine } from '../src/serve/engine.js'
import { makeTinyModel } from './tiny-model.js'

describe('serving a disposed model', () => {
  it('is refused by serve() and ServeEngine, naming dispose()', async () => {
    const model = (await loadModel(makeTinyModel(), { backend: 'wasm', threads: 1 })) as LlamaModel
    expect(model.disposed).toBe(false)
    model.dispose()
    expect(model.disposed).toBe(true)
    expect(() => new ServeEngine(model, { tokenizerThread: false })).toThrow(ModelInputError)
    expect(() => new ServeEngine(model, { tokenizerThread: false })).toThrow('serve: model was disposed (dispose()); load it again to serve it')
    await expect(serve(model, { port: 0 })).rejects.toThrow(/model was disposed/)
  })
})

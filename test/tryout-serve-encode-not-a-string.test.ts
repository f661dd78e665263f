/**
 * ServeEngine.encode (public: the server's tokenizing, in the tokenizer thread) refuses a text that is
 * not a string with the tokenizer's ModelInputError naming it, as model.tokenizer.encode does; through
 * the thread it was a plain Error (the worker's error crossed as a message only).
 */
import { describe, expect, it } from 'vitest'
import { ModelInputError } from '../src/model/errors.js'
import { useServer } from './serve-helpers.js'

const served = useServer()

describe('ServeEngine.encode', () => {
  it.each([
    [5, 'got number'],
    [null, 'got null'],
    [undefined, 'got undefined'],
  ])('%j: ModelInputError naming it', async (text, what) => {
    const e = await served.server.engine.encode(text as never).then(() => null, (x: unknown) => x)
    expect(e).toBeInstanceOf(ModelInputError)
    expect((e as Error).message).toBe(`tokenizer.encode: text must be a string, ${what}`)
  })

  it('a string: the model tokenizer\'s ids', async () => {
    expect(await served.server.engine.encode('Hello there')).toEqual(served.model.tokenizer.encode('Hello there'))
  })
})

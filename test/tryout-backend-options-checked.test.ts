/**
 * createBackend refuses an option it does not know and options that are not an object (RangeError naming
 * them, as its threads check): `createBackend('wasm', { thread: 4 })` ran on one thread, silently, and
 * null options were a TypeError; a thread count given as a string is shown quoted ("got \"2\"", it read
 * "got 2").
 */
import { describe, expect, it } from 'vitest'
import { createBackend, type BackendOptions } from '../src/backend/index.js'

describe('createBackend options', () => {
  it.each([
    [{ thread: 4 }, 'createBackend: unknown option "thread"; options: wasm, relaxedWasm'],
    [{ threds: 2, relaxed: false }, 'createBackend: unknown option "threds"'],
    [null, 'createBackend: options must be an object, got null'],
    [{ threads: '2' }, 'createBackend: threads must be an integer in [1, 256], got "2"'],
  ] as [unknown, string][])('createBackend("wasm", %j): RangeError', async (opts, message) => {
    await expect(createBackend('wasm', opts as BackendOptions)).rejects.toThrow(RangeError)
    await expect(createBackend('wasm', opts as BackendOptions)).rejects.toThrow(message)
  })

  it('the options it knows still load', async () => {
    const b = await createBackend('wasm', { relaxed: false, threads: 1, minPartMacs: 4, threadsOptional: true })
    expect(b.name).toBe('wasm')
    const r = await createBackend('reference', { heap: b.heap })
    expect(r.name).toBe('reference')
  })
})

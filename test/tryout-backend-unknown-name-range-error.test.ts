/**
 * createBackend refuses a backend name it does not know with a RangeError naming it, as it refuses a bad
 * option: it was a plain Error, thrown only after every known name had been passed over.
 */
import { describe, expect, it } from 'vitest'
import { createBackend } from '../src/index.js'

describe('createBackend with an unknown name', () => {
  it.each([['gpu', '"gpu"'], ['WASM', '"WASM"'], [5, '5']])('%s: a RangeError naming it and the known names', async (name, shown) => {
    const err = await createBackend(name as never).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RangeError)
    expect((err as Error).message).toBe(`createBackend: unknown backend ${shown}; expected 'wasm', 'reference', 'webgpu' or 'auto'`)
  })

  it('the known names still make their backends', async () => {
    expect((await createBackend('reference')).name).toBe('reference')
    expect((await createBackend('wasm')).name).toBe('wasm')
  })
})

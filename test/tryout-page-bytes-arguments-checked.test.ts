import { describe, expect, it } from 'vitest'
import { CacheError } from '../src/cache/errors.js'
import { pageBytes, packedLayout } from '../src/cache/formats.js'

// pageBytes (exported from the root) took any role: 'keys' (the plural a caller writes) was laid out as
// a value page without a word, and a role left out (pageBytes('float32', 64, 64)) or a negative width
// was reported as a bad `hi` "in [0, undefined]" / "in [0, -1]". Each argument is now checked first, in
// order, with its own name and value.

describe('pageBytes and packedLayout check their arguments', () => {
  it.each(['keys', 'values', 'K', 64, undefined])('role %s is a CacheError naming role', (role) => {
    expect(() => pageBytes('int2', role as never, 64, 64)).toThrow(CacheError)
    expect(() => pageBytes('int2', role as never, 64, 64)).toThrow(/role must be 'key' or 'value', got/)
    expect(() => packedLayout('int2+sign', role as never, 64, 64)).toThrow(/role must be 'key' or 'value'/)
  })

  it('a bad width is named as width, not as hi', () => {
    expect(() => pageBytes('int2', 'key', 64, -1)).toThrow(/width must be a positive integer, got -1/)
    expect(() => pageBytes('float32', 'value', 64, 2.5)).toThrow(/width must be a positive integer, got 2.5/)
  })

  it('a key page and a value page of the same size still differ where the groups do', () => {
    expect(pageBytes('int2', 'key', 33, 64)).not.toBe(pageBytes('int2', 'value', 33, 64))
    expect(pageBytes('float32', 'key', 64, 64)).toBe(64 * 64 * 4)
    expect(() => pageBytes('int2+sign', 'value', 64, 64)).toThrow(/int2\+sign is a key format/)
    expect(() => pageBytes('int2', 'key', 64, 64, 32, 3)).toThrow(/hi must be an integer in \[0, 64\]/)
  })
})

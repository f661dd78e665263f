/**
 * A typed factory given NaN or an infinity refuses it with a PolicyOptionValueError that names the value
 * as given (JSON would print both as null), for every kind of number option.
 */
import { describe, expect, it } from 'vitest'
import { kivi, snapkv, think, tokenselect } from '../src/policies/factories.js'
import { PolicyOptionValueError } from '../src/policies/errors.js'

describe('a non-finite option value is named in the error', () => {
  it.each([
    ['snapkv budget', () => snapkv({ budget: NaN }), 'budget=NaN'],
    ['snapkv tokens', () => snapkv({ tokens: Infinity }), 'tokens=Infinity'],
    ['think ratio', () => think({ ratio: -Infinity }), 'ratio=-Infinity'],
    ['kivi bits', () => kivi({ bits: NaN }), 'bits=NaN'],
    ['tokenselect threshold', () => tokenselect({ threshold: NaN }), 'threshold=NaN'],
  ])('%s', (_, make, named) => {
    expect(make).toThrow(PolicyOptionValueError)
    expect(make).toThrow(`option ${named} is not a number`)
  })
})

/**
 * The model's tokenizer refuses input the library would turn into no tokens or no text silently:
 * encode of a non-string (5 gave [], so generate then said "empty token list"), decode of a non-array
 * or of ids that are not non-negative integers (-1, NaN and 1.5 gave ''). Valid ids still round-trip.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { ModelInputError } from '../src/model/errors.js'

const fixture = useFixtureModel()

describe('tokenizer input', () => {
  it.each([
    ['a number', 5, 'tokenizer.encode: text must be a string, got number'],
    ['undefined', undefined, 'got undefined'],
    ['an array of ids', [1, 2], 'got object'],
  ])('encode refuses %s', (_, text, message) => {
    const call = () => fixture.model.tokenizer.encode(text as unknown as string)
    expect(call).toThrow(ModelInputError)
    expect(call).toThrow(message)
  })

  it.each([
    ['a string', 'abc', 'tokenizer.decode: ids must be an array of token ids, got string'],
    ['a negative id', [5, -1], 'tokenizer.decode: ids[1] = -1 is not a token id'],
    ['NaN', [NaN], 'ids[0] = NaN is not a token id'],
    ['a fraction', [5, 6, 1.5], 'ids[2] = 1.5 is not a token id'],
  ])('decode refuses %s', (_, ids, message) => {
    const call = () => fixture.model.tokenizer.decode(ids as unknown as number[])
    expect(call).toThrow(ModelInputError)
    expect(call).toThrow(message)
  })

  it('text still round-trips, and no ids are no text', () => {
    const text = 'It is a truth universally acknowledged'
    expect(fixture.model.tokenizer.decode(fixture.model.tokenizer.encode(text))).toBe(text)
    expect(fixture.model.tokenizer.decode([])).toBe('')
  })
})

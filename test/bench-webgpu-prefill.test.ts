import { describe, expect, it } from 'vitest'
import { parsePrefillArgs } from '../bench/webgpu-prefill.js'

describe('bench/webgpu-prefill arguments', () => {
  it('default to lavapipe sizes, and with --full to the issue 13 figure: 4096 tokens at chunks 128, 512 and 4096, 3 runs', () => {
    expect(parsePrefillArgs([])).toEqual({ full: false, length: 128, chunks: [32, 128], runs: 1 })
    expect(parsePrefillArgs(['--full'])).toEqual({ full: true, length: 4096, chunks: [128, 512, 4096], runs: 3 })
    expect(parsePrefillArgs(['--full', '--length', '8192', '--chunks', '256,1024', '--runs', '5'])).toEqual({ full: true, length: 8192, chunks: [256, 1024], runs: 5 })
  })

  it.each([
    [['--length', '1'], /--length: expected an integer in \[2, 8192\], got 1/],
    [['--length'], /--length: .* got undefined/],
    [['--chunks', '128,0'], /--chunks: .* got 0/],
    [['--chunks', '4097'], /--chunks: .* got 4097/],
    [['--runs', '1.5'], /--runs: .* got 1.5/],
    [['--warmup'], /unknown argument --warmup/],
  ])('refuses %j naming the bad value', (argv, message) => {
    expect(() => parsePrefillArgs(argv)).toThrow(RangeError)
    expect(() => parsePrefillArgs(argv)).toThrow(message)
  })
})

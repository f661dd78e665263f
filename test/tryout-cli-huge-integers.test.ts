/**
 * An integer option past 2^53 is refused by name (exit 2, one line) before any work. It was read as the
 * nearest double: `eval --samples 99999999999999999999` failed with exit 1 and "Invalid array length",
 * `perplexity --samples 99999999999999999999` ran on without end, and `eval --seed 99999999999999999999`
 * ran with seed 100000000000000000000, a seed other than the one typed.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'
const HUGE = '99999999999999999999'

describe('an integer past 2^53', () => {
  it.each([
    [['eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', HUGE, '--backend', 'wasm'], 'samples'],
    [['eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--seed', HUGE, '--backend', 'wasm'], 'seed'],
    [['perplexity', '--model', MODEL, '--length', '256', '--samples', HUGE], 'samples'],
    [['generate', '--model', MODEL, '--prompt', 'x', '--max-new-tokens', HUGE], 'max-new-tokens'],
    [['serve', '--model', MODEL, '--port', HUGE], 'port'],
  ])('%j: exit 2 naming it', async (args, name) => {
    const r = await cli(...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: --${name} must be at most 9007199254740991, got "${HUGE}"\n`)
  })

  it('2^53 - 1 itself is read as typed: the check that follows names it', async () => {
    const r = await cli('serve', '--model', MODEL, '--port', '9007199254740991')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('kvkit: --port must be in [0, 65535], got 9007199254740991\n')
  })
})

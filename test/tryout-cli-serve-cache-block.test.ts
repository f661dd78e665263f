/**
 * `kvkit serve` with a prefix cache smaller than one block (16 tokens), set by --cache-tokens or by a
 * --kv-budget whose default half is under 16: exit 2 naming the option, before the weights load. It
 * failed with exit 1 after loading, with ServeEngine's message in its own terms ("cacheTokens must be an
 * integer in [blockTokens, kvBudget) = [16, 1), got 0"), which names no option the user typed.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('kvkit serve: a prefix cache under one block', () => {
  it.each([
    [['--kv-budget', '1'], '--kv-budget 1 leaves 0 tokens for the prefix cache (half of it, --cache-tokens); it needs at least 16, one block'],
    [['--kv-budget', '31'], '--kv-budget 31 leaves 15 tokens for the prefix cache (half of it, --cache-tokens); it needs at least 16, one block'],
    [['--cache-tokens', '8'], '--cache-tokens must be at least 16 (one prefix-cache block), got 8'],
    [['--kv-budget', '100', '--cache-tokens', '15'], '--cache-tokens must be at least 16 (one prefix-cache block), got 15'],
  ])('%j: exit 2 naming it, nothing loaded', async (extra, message) => {
    const r = await cli('serve', '--model', MODEL, '--port', '0', '--backend', 'wasm', ...extra)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
  })
})

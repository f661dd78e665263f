/**
 * `kvkit serve` options that could never serve, refused with exit 2 naming the option before the weights
 * load:
 * - a prefix cache under one 16-token block (--cache-tokens, or a --kv-budget whose default half is
 *   under 16). It failed with exit 1 after loading, with ServeEngine's message in its own terms
 *   ("cacheTokens must be an integer in [blockTokens, kvBudget) = [16, 1), got 0").
 * - an empty --host, --model-id or --api-key. An empty --host reached node's listen(), which then bound
 *   every interface ([::]): the server the README says listens on this machine only was open to the
 *   network. An empty --model-id served a model named "", an empty --api-key asked for "Bearer ".
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('kvkit serve: refused before the weights load', () => {
  it.each([
    [['--kv-budget', '1'], '--kv-budget 1 leaves 0 tokens for the prefix cache (half of it, --cache-tokens); it needs at least 16, one block'],
    [['--kv-budget', '31'], '--kv-budget 31 leaves 15 tokens for the prefix cache (half of it, --cache-tokens); it needs at least 16, one block'],
    [['--cache-tokens', '8'], '--cache-tokens must be at least 16 (one prefix-cache block), got 8'],
    [['--kv-budget', '100', '--cache-tokens', '15'], '--cache-tokens must be at least 16 (one prefix-cache block), got 15'],
    [['--host', ''], '--host must not be empty, got ""'],
    [['--host', ' '], '--host must not be empty, got " "'],
    [['--model-id', ''], '--model-id must not be empty, got ""'],
    [['--api-key', ''], '--api-key must not be empty, got ""'],
  ])('%j: exit 2 naming it', async (extra, message) => {
    const r = await cli('serve', '--model', MODEL, '--port', '0', '--backend', 'wasm', ...extra)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })
})

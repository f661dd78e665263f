/**
 * `kvkit serve` options that could never serve, refused with exit 2 naming the option before the weights
 * load:
 * - a prefix cache under one 16-token block (--cache-tokens, or a --kv-budget whose default half is
 *   under 16). It failed with exit 1 after loading, with ServeEngine's message in its own terms
 *   ("cacheTokens must be an integer in [blockTokens, kvBudget) = [16, 1), got 0").
 * - an empty --host, --model-id or --api-key. An empty --host reached node's listen(), which then bound
 *   every interface ([::]): the server the README says listens on this machine only was open to the
 *   network. An empty --model-id served a model named "", an empty --api-key asked for "Bearer ".
 * - --aging-ms without --scheduler kvshare, the one order that ages waiting requests: it was ignored.
 * - KVKIT_API_KEY set but empty (without --api-key): every request was a 401, no client could send
 *   a key that matched.
 */
import { afterEach, describe, expect, it } from 'vitest'
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
    [['--aging-ms', '5000'], '--aging-ms needs --scheduler kvshare (the fcfs order does not age requests)'],
    [['--scheduler', 'program', '--aging-ms', '5000'], '--aging-ms needs --scheduler kvshare (the program order does not age requests)'],
  ])('%j: exit 2 naming it', async (extra, message) => {
    const r = await cli('serve', '--model', MODEL, '--port', '0', '--backend', 'wasm', ...extra)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })
})

describe('kvkit serve: KVKIT_API_KEY set but empty', () => {
  const before = process.env.KVKIT_API_KEY
  afterEach(() => {
    if (before === undefined) delete process.env.KVKIT_API_KEY
    else process.env.KVKIT_API_KEY = before
  })

  it('exit 2 naming it; --api-key given beside it is used', async () => {
    process.env.KVKIT_API_KEY = ''
    const r = await cli('serve', '--model', MODEL, '--port', '0', '--backend', 'wasm')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('kvkit: KVKIT_API_KEY is set but empty: give it a key, or unset it to serve without one\n')
    // the option wins over the variable: the run goes on to the next check (here a bad --port)
    const withKey = await cli('serve', '--model', MODEL, '--port', '70000', '--api-key', 'sk-x')
    expect(withKey.stderr).toBe('kvkit: --port must be in [0, 65535], got 70000\n')
  })
})

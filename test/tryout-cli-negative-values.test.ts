/**
 * A negative number given as an option's next argument (`--port -1`) reaches kvkit's own check and is
 * named there (exit 2, one line, the value quoted), as `--port=-1` always was. parseArgs refused it
 * first as "Option '--port' argument is ambiguous", naming neither the value nor what the option takes.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('a negative value after its option', () => {
  it.each([
    [['serve', '--model', MODEL, '--port', '-1'], '--port must be a non-negative integer, got "-1"'],
    [['serve', '--model', MODEL, '--parallel', '-2'], '--parallel must be a non-negative integer, got "-2"'],
    [['serve', '--model', MODEL, '--blend-ratio', '-0.5'], '--blend-ratio must be a number in [0, 1], got "-0.5"'],
    [['playground', '--port', '-1'], '--port must be a non-negative integer, got "-1"'],
    [['generate', '--model', MODEL, '--prompt', 'x', '--max-new-tokens', '-5'], '--max-new-tokens must be a non-negative integer, got "-5"'],
    [['perplexity', '--model', MODEL, '--seed', '-1'], '--seed must be a non-negative integer, got "-1"'],
    [['eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '-512', '--samples', '1'], '--length must be a non-negative integer, got "-512"'],
    [['mpc', '--length', '-3'], '--length must be a non-negative integer, got "-3"'],
  ])('%j: exit 2 naming the value', async (args, message) => {
    const r = await cli(...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })

  it('a text value that starts with a dash and a number is taken as the text', async () => {
    // the prompt "-5" reaches the model check (a missing folder), not parseArgs' refusal
    const r = await cli('generate', '--model', 'models/no-such-model', '--prompt', '-5')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/model folder not found: models\/no-such-model/)
  })

  it('an option name after an option still counts as a missing value', async () => {
    const r = await cli('serve', '--model', MODEL, '--port', '--parallel', '2')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/--port/)
  })
})

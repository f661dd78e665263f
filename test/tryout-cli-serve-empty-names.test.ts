/**
 * `kvkit serve` refuses an empty --host, --model-id or --api-key (exit 2 naming it) before the weights
 * load. An empty --host reached node's listen(), which then bound every interface ([::]): the server the
 * README says listens on this machine only was open to the network. An empty --model-id served a model
 * named "", and an empty --api-key asked every client for the header "Bearer ".
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('kvkit serve: empty names', () => {
  it.each([
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

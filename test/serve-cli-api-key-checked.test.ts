/**
 * `kvkit serve` with an API key no `Authorization: Bearer` header can carry (outside RFC 6750's token
 * characters, which hono/bearer-auth takes) exits 2 naming where the key came from, before the model
 * loads: serve() refuses it too, which the command reported as an internal failure (exit 1).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'
const saved = process.env.KVKIT_API_KEY
afterEach(() => {
  if (saved === undefined) delete process.env.KVKIT_API_KEY
  else process.env.KVKIT_API_KEY = saved
})

describe('kvkit serve: an API key that is not a bearer token', () => {
  it('--api-key "sk key": exit 2 naming --api-key', async () => {
    const r = await cli('serve', '--model', MODEL, '--port', '0', '--api-key', 'sk key')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: --api-key must be a bearer token (RFC 6750: letters, digits and -._~+/, then any '='); character 3 of 6 is U+0020\n`)
  })

  it('KVKIT_API_KEY="ключ": exit 2 naming KVKIT_API_KEY', async () => {
    process.env.KVKIT_API_KEY = 'ключ'
    const r = await cli('serve', '--model', MODEL, '--port', '0')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: KVKIT_API_KEY must be a bearer token (RFC 6750: letters, digits and -._~+/, then any '='); character 1 of 4 is U+043A\n`)
  })
})

/**
 * The API key (hono/bearer-auth, which compares tokens in constant time): a missing, malformed or wrong
 * Authorization header is one 401 in OpenAI's error shape (bearer-auth's own answers are a text 401 and,
 * for a header that is not `Bearer <token>`, a 400); a key that no Bearer header can carry (RFC 6750's
 * token characters) is refused by serve() before it starts, where every request would have been a 401.
 */
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'
import { serve } from '../src/serve/http.js'
import { ModelInputError } from '../src/model/errors.js'

const KEY = 'sk-test_key.1~+/=='
const served = useServer({ kvBudget: 4096, cacheTokens: 1024, apiKey: KEY })

describe('kvkit serve: the API key', () => {
  it.each([
    ['none', undefined],
    ['another scheme', `Basic ${KEY}`],
    ['characters no token has', 'Bearer sk test!'],
    ['a wrong key', 'Bearer sk-test_key.2'],
    ['the key with a tail', `Bearer ${KEY}x`],
  ])('%s: 401 invalid_api_key in OpenAI\'s shape', async (_, authorization) => {
    const r = await fetch(`${served.server.url}/v1/models`, { headers: authorization === undefined ? {} : { Authorization: authorization } })
    expect(r.status).toBe(401)
    expect(await r.json()).toEqual({ error: { message: 'Incorrect API key provided', type: 'authentication_error', param: null, code: 'invalid_api_key' } })
  })

  it('the key: served (the scheme in any case, as RFC 7235 has it); /health needs none', async () => {
    for (const scheme of ['Bearer', 'bearer']) {
      const r = await fetch(`${served.server.url}/v1/models/${ID}`, { headers: { Authorization: `${scheme} ${KEY}` } })
      expect(r.status).toBe(200)
    }
    expect((await fetch(`${served.server.url}/health`)).status).toBe(200)
  })

  it('/v1 itself is no route: a 404 without the key too (Hono\'s /v1/* would have asked for it)', async () => {
    for (const path of ['/v1', '/v1/']) {
      const r = await fetch(`${served.server.url}${path}`)
      expect(r.status).toBe(404)
      expect(((await r.json()) as { error: { message: string } }).error.message).toBe('no route /v1')
    }
  })

  it.each([
    ['sk key', 'character 3 of 6 is U+0020'],
    ['ключ', 'character 1 of 4 is U+043A'],
    ['a=b', 'character 3 of 3 is U+0062 (b)'],
    ['==', 'it has no character before its trailing =s'],
  ])('apiKey %j: serve() refuses it with a ModelInputError naming the character, not echoing the key (a secret)', async (apiKey, where) => {
    const e = await serve(served.model, { port: 0, apiKey }).then((s) => s.close(), (x: unknown) => x)
    expect(e).toBeInstanceOf(ModelInputError)
    expect((e as Error).message).toBe(`serve: apiKey must be a bearer token (RFC 6750: letters, digits and -._~+/, then any '='); ${where}`)
    expect((e as Error).message).not.toContain(JSON.stringify(apiKey))
  })
})

/**
 * GET /v1/models/{id} with an id that is not valid percent-encoding (`%E0%A4%A`, a lone `%`) is a 404
 * model_not_found naming the id as sent, as any other unknown id. decodeURIComponent threw inside the
 * handler and the client got a 500 "internal error: URI malformed", a server error for a client's typo.
 */
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'

const served = useServer({ kvBudget: 4096, cacheTokens: 1024 })

describe('kvkit serve: GET /v1/models/{id} with a bad escape', () => {
  it.each(['%E0%A4%A', '%', 'fixture%2'])('%s: 404 model_not_found naming it', async (id) => {
    const r = await fetch(`${served.server.url}/v1/models/${id}`)
    const body = (await r.json()) as { error: { message: string; param: string; code: string } }
    expect(r.status).toBe(404)
    expect(body.error).toMatchObject({ message: `The model '${id}' does not exist`, param: 'model', code: 'model_not_found' })
  })

  it('a well-escaped id is still decoded: the served one is found, another is a 404', async () => {
    expect(((await (await fetch(`${served.server.url}/v1/models/${encodeURIComponent(ID)}`)).json()) as { id: string }).id).toBe(ID)
    expect((await fetch(`${served.server.url}/v1/models/fixture%2D15m`)).status).toBe(404)
  })
})

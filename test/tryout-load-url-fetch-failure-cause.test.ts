/**
 * A model URL that cannot be fetched names why: Node's fetch rejects with the bare "fetch failed" and keeps
 * the reason (connection refused, host not found) in `cause`, so loadModel said only "cannot fetch
 * URL/config.json: fetch failed". The message now carries the causes.
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/index.js'
import { ModelLoadError } from '../src/model/errors.js'
import { errorText } from '../src/model/error-text.js'
import { closedPort } from './closed-port.js'

describe('loadModel by URL, server not there', () => {
  it('ModelLoadError naming the URL and the refused connection', async () => {
    const port = await closedPort()
    const err = await loadModel(`http://127.0.0.1:${port}/model/`).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ModelLoadError)
    expect((err as Error).message).toMatch(new RegExp(`^cannot fetch http://127\\.0\\.0\\.1:${port}/model/config\\.json: fetch failed: connect ECONNREFUSED 127\\.0\\.0\\.1:${port}$`))
  })

  it('errorText: the message, then each cause once, at most four levels', () => {
    const inner = new Error('getaddrinfo ENOTFOUND example.invalid')
    expect(errorText(new TypeError('fetch failed', { cause: inner }))).toBe('fetch failed: getaddrinfo ENOTFOUND example.invalid')
    expect(errorText(new Error('same', { cause: new Error('same') }))).toBe('same')
    let deep = new Error('e5')
    for (const m of ['e4', 'e3', 'e2', 'e1']) deep = new Error(m, { cause: deep })
    expect(errorText(deep)).toBe('e1: e2: e3: e4')
    expect(errorText('a string')).toBe('a string')
  })
})

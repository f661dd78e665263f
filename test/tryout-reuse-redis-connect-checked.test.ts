/**
 * RedisChunkStore.connect settles: a server that is not there rejects with a ReuseError naming the url
 * (node-redis retried the first connection forever, so the promise never settled and a script hung with no
 * output), and bad arguments are a ReuseError naming the value before any socket opens (a url of another
 * type was node-redis's TypeError "url.startsWith is not a function"; a ttlSeconds of -1 was taken and then
 * expired every chunk as it was written).
 */
import { describe, expect, it } from 'vitest'
import { RedisChunkStore } from '../src/node/redis-chunk-store.js'
import { ReuseError } from '../src/reuse/errors.js'
import { closedPort } from './closed-port.js'

describe('RedisChunkStore.connect', () => {
  it('a server that is not there: ReuseError naming the url, within seconds', async () => {
    const url = `redis://127.0.0.1:${await closedPort()}`
    const started = Date.now()
    const err = await RedisChunkStore.connect(url).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReuseError)
    expect((err as Error).message).toContain(`cannot connect to "${url}"`)
    expect(Date.now() - started).toBeLessThan(5000)
  }, 10_000)

  it.each([
    ['a number url', 5, {}, 'url must be a redis:// or rediss:// URL string, got number'],
    ['an http url', 'http://127.0.0.1:6379', {}, 'got "http://127.0.0.1:6379"'],
    ['a negative ttlSeconds', 'redis://127.0.0.1:1', { ttlSeconds: -1 }, 'ttlSeconds must be a positive integer (seconds), got -1'],
    ['a fractional ttlSeconds', 'redis://127.0.0.1:1', { ttlSeconds: 0.5 }, 'got 0.5'],
    ['a prefix that is not a string', 'redis://127.0.0.1:1', { prefix: 7 }, 'prefix must be a string, got number'],
    ['an unknown option', 'redis://127.0.0.1:1', { ttl: 60 }, 'unknown option "ttl"'],
  ])('%s: ReuseError naming it, before connecting', async (_, url, options, message) => {
    const err = await RedisChunkStore.connect(url as string, options as object).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReuseError)
    expect((err as Error).message).toContain(message)
    expect((err as Error).message).not.toContain('cannot connect')
  }, 10_000)
})

/**
 * `kvkit serve` on an address it cannot listen on exits 2 with one line naming the option at fault
 * (--port in use, --host not of this machine or not resolving). It exited 1 with node's own words
 * ("listen EADDRINUSE: address already in use 127.0.0.1:PORT"), as for an internal failure.
 */
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('kvkit serve: an address it cannot listen on', () => {
  it('a port in use: exit 2 naming --port', async () => {
    const holder = createServer()
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r))
    const port = (holder.address() as AddressInfo).port
    try {
      const r = await cli('serve', '--model', MODEL, '--backend', 'wasm', '--port', String(port))
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`kvkit: --port ${port} is in use on 127.0.0.1 (another server listens there; --port 0 picks a free one)\n`)
    } finally {
      holder.close()
    }
  })

  it.each([
    // TEST-NET-3 (RFC 5737): never an address of this machine; .invalid (RFC 2606) never resolves
    ['203.0.113.5', '--host 203.0.113.5 is not an address of this machine'],
    ['nosuch.invalid', '--host nosuch.invalid does not resolve to an address'],
  ])('--host %s: exit 2 naming it', async (host, message) => {
    const r = await cli('serve', '--model', MODEL, '--backend', 'wasm', '--port', '0', '--host', host)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
  })
})

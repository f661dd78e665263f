/**
 * Party.close releases a party's transport: over TCP its socket ends (the process holds no socket
 * after it, and the peer's waiting round rejects, "closed by the peer"), over a MessageChannel the peer
 * sees its end close. A round waiting for the peer rejects with a PartyClosedError naming the close, as
 * does every later round; close is idempotent. A Party had no close: a caller reached for
 * party.transport.close(), and over TCP a round waiting on this side was never rejected.
 */
import { describe, expect, it } from 'vitest'
import { PartyClosedError, TransportError } from '../src/mpc/index.js'
import { encodeFixed } from '../src/mpc/engine.js'
import { referenceRing } from '../src/mpc/ring.js'
import { createInProcessParties, createParty } from '../src/mpc/session.js'
import { connectLoopback, listenLoopback } from '../src/mpc/socket.js'

const sockets = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPWRAP').length
/** resolves once `f()` holds, polling each turn of the event loop for up to 2 s */
async function until(f: () => boolean): Promise<void> {
  for (const t0 = performance.now(); !f(); ) {
    if (performance.now() - t0 > 2000) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('Party.close', () => {
  it('over TCP: a waiting round rejects naming the close, the peer sees the socket end, no socket is left', async () => {
    const before = sockets()
    const l = listenLoopback()
    const [a, b] = await Promise.all([l.transport, connectLoopback(await l.ready)])
    const [p0, p1] = [createParty(0, a, referenceRing), createParty(1, b, referenceRing)]
    expect(sockets()).toBe(before + 2)
    const x = encodeFixed([1.5], 18)
    // party 0 opens alone: its round waits for a message party 1 never sends
    const waiting = p0.open(x)
    const peerWaiting = p1.transport.recv()
    await new Promise((r) => setTimeout(r, 20))
    p0.close()
    await expect(waiting).rejects.toThrow(PartyClosedError)
    await expect(waiting).rejects.toThrow('party 0 was closed (Party.close)')
    // party 1 got party 0's message of the open, then the end of the socket
    expect((await peerWaiting).length).toBe(1)
    await expect(p1.transport.recv()).rejects.toThrow(new TransportError('socket closed by the peer'))
    await until(() => sockets() === before)
    // idempotent; later rounds reject too, before they send
    p0.close()
    expect(p0.closed).toBe(true)
    await expect(p0.open(x)).rejects.toThrow(PartyClosedError)
    p1.close()
    expect(sockets()).toBe(before)
  })

  it('in process: a waiting round rejects naming the close, and the peer sees the channel close', async () => {
    const [p0, p1] = createInProcessParties(referenceRing)
    const x = encodeFixed([2], 18)
    const waiting = p1.mul(x, x)
    await new Promise((r) => setTimeout(r, 10))
    p1.close()
    await expect(waiting).rejects.toThrow(new PartyClosedError('party 1 was closed (Party.close): no round can run on it'))
    // party 0's round gets party 1's message of the mul, then its receive for the truncation sees the channel closed
    await expect(p0.mul(x, x)).rejects.toThrow(new TransportError('channel closed by the peer'))
    p0.close()
    p0.close()
    await expect(p0.open(x)).rejects.toThrow(PartyClosedError)
  })
})

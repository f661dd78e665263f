/**
 * How the two parties' messages travel. A message is a run of ring words; the executor only ever sends
 * one message and then awaits one (a round), so a transport is an ordered, reliable pipe each way.
 *
 * - `inProcessPair()`: both parties in one JavaScript thread, talking through a MessageChannel. A
 *   simulation: one process holds both parties' shares, so it protects nothing; it exists to test the
 *   protocols and measure their communication exactly.
 * - `socket.ts` (Node only): a TCP socket between two processes on 127.0.0.1.
 * - `throttled(t, link)`: the transport's own configurable one-way delay and bandwidth limit, applied on
 *   the sending side (this machine's kernel has no netem).
 */

import { nextTurn } from '../model/next-turn.js'

export interface Transport {
  send(words: BigInt64Array): void
  recv(): Promise<BigInt64Array>
  close(): void
}

export class TransportError extends Error {
  override name = 'TransportError'
}

/** A FIFO of received messages and waiting receivers. */
export class Inbox {
  private readonly queue: BigInt64Array[] = []
  private readonly waiting: { resolve: (w: BigInt64Array) => void; reject: (e: Error) => void }[] = []
  private closedWith: Error | null = null

  push(words: BigInt64Array): void {
    const w = this.waiting.shift()
    if (w) w.resolve(words)
    else this.queue.push(words)
  }
  next(): Promise<BigInt64Array> {
    const m = this.queue.shift()
    if (m) return Promise.resolve(m)
    if (this.closedWith) return Promise.reject(this.closedWith)
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
  }
  /** rejects the waiting receivers and later ones with `reason` (the first close's: a later one, the socket's own close event after ours, does not rename it) */
  close(reason: Error): void {
    this.closedWith ??= reason
    reason = this.closedWith
    for (const w of this.waiting.splice(0)) w.reject(reason)
  }
}

/** Node's MessagePort ref/unref (a browser's port has neither, and holds no process) */
type Holdable = { ref?(): void; unref?(): void }

/**
 * One end of the channel. On Node a port with a message handler holds the process alive until it is
 * closed, so parties a caller never closed kept Node running after the computation; the port holds it
 * only while a receive waits (the message it waits for is coming), so an idle pair lets the process exit.
 */
class PortTransport implements Transport {
  private readonly inbox = new Inbox()
  private receiving = 0
  constructor(private readonly port: MessagePort) {
    port.onmessage = (ev: MessageEvent) => this.inbox.push(new BigInt64Array(ev.data as ArrayBuffer))
    // a receive waiting for a peer that closed its end waited forever (where the runtime tells: Node, Chromium)
    port.addEventListener?.('close', () => this.inbox.close(new TransportError('channel closed by the peer')))
    port.start?.()
    this.hold()
  }
  send(words: BigInt64Array): void {
    const copy = words.slice() // transfer a copy: the caller keeps its array
    this.port.postMessage(copy.buffer, [copy.buffer])
  }
  recv(): Promise<BigInt64Array> {
    this.receiving++
    this.hold()
    return this.inbox.next().finally(() => {
      this.receiving--
      this.hold()
    })
  }
  private hold(): void {
    const port = this.port as unknown as Holdable
    if (this.receiving > 0) port.ref?.()
    else port.unref?.()
  }
  close(): void {
    this.inbox.close(new TransportError('transport closed'))
    this.port.close()
  }
}

/** Two ends of an in-process MessageChannel: [party 0's, party 1's]. */
export function inProcessPair(): [Transport, Transport] {
  const { port1, port2 } = new MessageChannel()
  return [new PortTransport(port1), new PortTransport(port2)]
}

/** A link's shape for `throttled`. */
export interface LinkLimit {
  /** one-way delay in seconds added to every message */
  delaySeconds: number
  /** bits per second; messages queue behind each other on the link */
  bandwidthBitsPerSecond: number
}

/**
 * Sleeps until performance.now() reaches `deadline` ms: timers for the bulk, then a macrotask spin for
 * sub-millisecond precision (nextTurn: setImmediate where the runtime has it; browsers and workers have
 * none, and calling it there threw inside the timer, so the message never left and the receiver hung).
 */
function at(deadline: number, f: () => void): void {
  const left = deadline - performance.now()
  if (left > 2) setTimeout(() => at(deadline, f), left - 1.5)
  else if (left > 0) void nextTurn().then(() => at(deadline, f))
  else f()
}

/**
 * Wraps a transport so each message leaves after the link has pushed the previous ones through
 * (size / bandwidth, serialised) and arrives `delaySeconds` later. One queue, sent in order.
 */
export function throttled(inner: Transport, link: LinkLimit): Transport {
  if (!(link.bandwidthBitsPerSecond > 0)) throw new TransportError(`throttled: bandwidth must be positive, got ${link.bandwidthBitsPerSecond}`)
  if (!(link.delaySeconds >= 0)) throw new TransportError(`throttled: delay must be non-negative, got ${link.delaySeconds}`)
  let linkFree = 0
  const queue: { due: number; words: BigInt64Array }[] = []
  let pumping = false
  let closing = false
  const pump = (): void => {
    while (queue.length && queue[0].due <= performance.now()) inner.send(queue.shift()!.words)
    if (queue.length) at(queue[0].due, pump)
    else {
      pumping = false
      if (closing) inner.close()
    }
  }
  return {
    send(words) {
      const now = performance.now()
      linkFree = Math.max(now, linkFree) + ((words.byteLength * 8) / link.bandwidthBitsPerSecond) * 1000
      queue.push({ due: linkFree + link.delaySeconds * 1000, words: words.slice() })
      if (!pumping) {
        pumping = true
        at(queue[0].due, pump)
      }
    },
    recv: () => inner.recv(),
    /** closes the inner transport once every queued message has left */
    close: () => {
      closing = true
      if (!pumping) inner.close()
    },
  }
}

/**
 * The TCP transport (Node only: it imports node:net, so the browser-safe root entry does not export
 * it). Frames are a 4-byte little-endian byte count and the words. Listens and connects on 127.0.0.1
 * only: this is a loopback measurement rig, not a deployment (no TLS, no authentication).
 */
import { createServer, connect, type Socket } from 'node:net'
import { Inbox, TransportError, type Transport } from './transport.js'

class SocketTransport implements Transport {
  private readonly inbox = new Inbox()
  /** received chunks not yet framed (kept as a list: concatenating per chunk is quadratic in a large frame) */
  private chunks: Buffer[] = []
  private buffered = 0
  /** byte count of the frame being received, once its header is in */
  private frameBytes = -1

  constructor(private readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('close', () => this.inbox.close(new TransportError('socket closed by the peer')))
    socket.on('error', (e) => this.inbox.close(new TransportError(`socket error: ${e.message}`)))
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk)
    this.buffered += chunk.length
    for (;;) {
      if (this.frameBytes < 0) {
        if (this.buffered < 4) return
        const head = new Uint8Array(4)
        this.take(head)
        this.frameBytes = new DataView(head.buffer).getUint32(0, true)
      }
      if (this.buffered < this.frameBytes) return
      const words = new BigInt64Array(this.frameBytes / 8)
      this.take(new Uint8Array(words.buffer))
      this.frameBytes = -1
      this.inbox.push(words)
    }
  }

  /** moves the next out.length buffered bytes into out (one copy) */
  private take(out: Uint8Array): void {
    let o = 0
    while (o < out.length) {
      const c = this.chunks[0]
      const n = Math.min(c.length, out.length - o)
      out.set(c.subarray(0, n), o)
      o += n
      if (n === c.length) this.chunks.shift()
      else this.chunks[0] = c.subarray(n)
    }
    this.buffered -= out.length
  }

  send(words: BigInt64Array): void {
    const head = Buffer.alloc(4)
    head.writeUInt32LE(words.byteLength, 0)
    this.socket.cork()
    this.socket.write(head)
    this.socket.write(Buffer.from(words.buffer, words.byteOffset, words.byteLength))
    this.socket.uncork()
  }
  recv(): Promise<BigInt64Array> {
    return this.inbox.next()
  }
  /** ends the socket (the peer sees it close) and rejects a receive waiting on this side */
  close(): void {
    this.inbox.close(new TransportError('transport closed'))
    this.socket.end()
  }
}

/** Party 0's side: listens on 127.0.0.1 (port 0 = any free port); `ready` resolves with the port. */
export function listenLoopback(port = 0): { ready: Promise<number>; transport: Promise<Transport> } {
  let onPort!: (p: number) => void
  const ready = new Promise<number>((r) => (onPort = r))
  const transport = new Promise<Transport>((resolve, reject) => {
    const server = createServer((socket) => {
      server.close()
      resolve(new SocketTransport(socket))
    })
    server.on('error', reject)
    server.listen(port, '127.0.0.1', () => onPort((server.address() as { port: number }).port))
  })
  return { ready, transport }
}

/** Party 1's side: connects to 127.0.0.1:port. */
export function connectLoopback(port: number): Promise<Transport> {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TransportError(`connectLoopback: port must be in 1..65535, got ${port}`)
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(new SocketTransport(socket)))
    socket.once('error', reject)
  })
}

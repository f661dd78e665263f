/**
 * The TCP transport (Node only: it imports node:net, so the browser-safe root entry does not export
 * it). Frames are a 4-byte little-endian byte count and the words. Listens and connects on 127.0.0.1
 * only: this is a loopback measurement rig, not a deployment (no TLS, no authentication).
 */
import { createServer, connect, type Socket } from 'node:net'
import { Inbox, TransportError, type Transport } from './transport.js'

class SocketTransport implements Transport {
  private readonly inbox = new Inbox()
  private pending: Buffer<ArrayBufferLike> = Buffer.alloc(0)

  constructor(private readonly socket: Socket) {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('close', () => this.inbox.close(new TransportError('socket closed by the peer')))
    socket.on('error', (e) => this.inbox.close(new TransportError(`socket error: ${e.message}`)))
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk
    while (this.pending.length >= 4) {
      const n = this.pending.readUInt32LE(0)
      if (this.pending.length < 4 + n) break
      const body = new Uint8Array(n)
      body.set(this.pending.subarray(4, 4 + n))
      this.inbox.push(new BigInt64Array(body.buffer))
      this.pending = this.pending.subarray(4 + n)
    }
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
  close(): void {
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

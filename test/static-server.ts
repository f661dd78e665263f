import { createReadStream, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { extname, join, normalize } from 'node:path'

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.wasm': 'application/wasm' }

/**
 * A static file server on 127.0.0.1 (a free port): URL prefix -> folder, or -> in-memory text. Files are
 * streamed with Content-Length, so clients see real progress. `requests` logs every path asked for.
 */
export async function serveStatic(routes: Record<string, string>, texts: Record<string, string> = {}): Promise<{ url: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    requests.push(path)
    if (path in texts) {
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'text/plain' })
      res.end(texts[path])
      return
    }
    const prefix = Object.keys(routes).find((p) => path.startsWith(p))
    const file = prefix === undefined ? null : join(routes[prefix], normalize(path.slice(prefix.length)).replace(/^(\.\.[/\\])+/, ''))
    let size = -1
    try {
      if (file && statSync(file).isFile()) size = statSync(file).size
    } catch {}
    if (size < 0) {
      res.writeHead(404).end('not found')
      return
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file!)] ?? 'application/octet-stream', 'content-length': size })
    createReadStream(file!).pipe(res)
  })
  // a client may keep a socket idle across a slow test: keep it open longer than any test waits
  server.keepAliveTimeout = 120_000
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, requests, close: () => new Promise((r) => server.close(() => r())) }
}

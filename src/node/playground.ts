import { createReadStream, existsSync, statSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { extname, join, relative, resolve, sep } from 'node:path'

/**
 * The static server behind `kvkit playground` (issue 20): the built page (`npm run build:playground`,
 * dist-playground/) at `/`, and a model folder (default: the bundled fixture) at `/model/`, where the
 * page's "bundled model" loads it by URL. Files are streamed with Content-Length so the page shows real
 * load progress. Only files under the two folders are served; anything else is 404. Node-only: the root
 * `kvkit` entry never imports this.
 */
export interface PlaygroundServerOptions {
  /** the built page's folder */
  page: string
  /** the model folder served at /model/ (config.json, tokenizer.json, *.safetensors) */
  model: string
  /** 0 (default) picks a free port */
  port?: number
  /** default 127.0.0.1: the playground is for this machine */
  host?: string
}

export interface PlaygroundServer {
  url: string
  /**
   * the last REQUESTS_KEPT paths asked for, oldest first (the test reads it): a server left running for
   * days kept every path, its memory growing with each request
   */
  requests: string[]
  close(): Promise<void>
}

/** how many of the latest request paths `requests` holds */
export const REQUESTS_KEPT = 256

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.txt': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8',
}

/** the file under `dir` that a URL path names, or null when it leaves the folder or is no regular file */
function fileUnder(dir: string, path: string): string | null {
  const file = resolve(dir, '.' + sep + path)
  const rel = relative(dir, file)
  if (rel.startsWith('..') || resolve(dir, rel) !== file) return null
  try {
    return statSync(file).isFile() ? file : null
  } catch {
    return null
  }
}

/**
 * Starts the server; resolves once it listens. Throws (before listening) when the page was not built
 * or the model folder has no config.json, naming the folder.
 */
export async function servePlayground(o: PlaygroundServerOptions): Promise<PlaygroundServer> {
  const page = resolve(o.page)
  const model = resolve(o.model)
  if (!existsSync(join(page, 'index.html'))) throw new Error(`the playground page is not built in ${page}: run \`npm run build:playground\``)
  if (!existsSync(join(model, 'config.json'))) throw new Error(`${model} is not a model folder (no config.json)`)
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    let path: string
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    } catch {
      res.writeHead(400).end('bad path')
      return
    }
    requests.push(path)
    if (requests.length > REQUESTS_KEPT) requests.splice(0, requests.length - REQUESTS_KEPT)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    const file = path.startsWith('/model/') ? fileUnder(model, path.slice('/model/'.length)) : fileUnder(page, path === '/' ? 'index.html' : path.slice(1))
    if (file === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size, 'cache-control': 'no-cache' })
    if (req.method === 'HEAD') res.end()
    else createReadStream(file).pipe(res)
  })
  const host = o.host ?? '127.0.0.1'
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(o.port ?? 0, host, ok)
  })
  const { port } = server.address() as { port: number }
  return {
    url: `http://${host}:${port}/`,
    requests,
    close: () => new Promise((r) => {
      server.closeAllConnections()
      server.close(() => r())
    }),
  }
}

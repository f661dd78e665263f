import { createAdaptorServer } from '@hono/node-server'
import type { Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ModelInputError, shownValue } from '../model/errors.js'
import type { LlamaModel } from '../model/model.js'
import { checkServeNames, type ServeEngine } from './engine.js'
import { HANDLER_OPTION_SET, serveHandler, type HandlerOptions } from './handler.js'

export interface ServeOptions extends HandlerOptions {
  /** the address to listen on (default '127.0.0.1': this machine only) */
  host?: string
  /** the port (default 8080; 0 picks a free one, `server.port` says which) */
  port?: number
}

export interface KvkitServer {
  readonly url: string
  readonly port: number
  readonly engine: ServeEngine
  /** stops listening, aborts running requests, closes connections, frees the prefix cache; the model stays the caller's */
  close(): Promise<void>
}

/** every option serve takes: the engine's and the listener's */
const SERVE_OPTION_SET: Record<keyof ServeOptions, true> = { ...HANDLER_OPTION_SET, host: true, port: true }

/**
 * Throws ModelInputError naming a listener option that is wrong, before the engine starts: node refused
 * a port of -1 or 1.5 with a RangeError, and took an empty host (every interface, where the default is
 * this machine only). The other options are serveHandler's (checkAppOptions, checkServeNames).
 */
function checkListenOptions(o: ServeOptions): void {
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535)) throw new ModelInputError(`serve: port must be an integer in [0, 65535] (0: a free one), got ${shownValue(o.port)}`)
  if (o.host !== undefined && !(typeof o.host === 'string' && o.host !== '')) throw new ModelInputError(`serve: host must be a non-empty string (an address or name of this machine), got ${shownValue(o.host)}`)
}

/**
 * `kvkit serve`: an OpenAI-compatible HTTP server on `model`. Endpoints: GET /v1/models,
 * GET /v1/models/{id}, POST /v1/chat/completions and POST /v1/completions (streamed as server-sent
 * events with `stream: true`), GET /health. Bodies are checked before any work (400 naming the field);
 * a client that disconnects aborts its request and frees its KV. See ServeEngine for reuse and the KV
 * budget. Options are checked before anything starts (ModelInputError naming the option).
 *
 * The routes are a Hono app (serveApp, hono.dev: hono/bearer-auth, hono/body-limit, hono/streaming),
 * served here by @hono/node-server on a node:http server; Hono's apps also run on Deno.serve, Bun.serve
 * and edge workers, which take the app's `fetch` as it is. As every @hono/node-server app does, the first
 * serve() sets the process's global Request and Response to the adapter's lighter subclasses of Node's
 * (`instanceof` holds both ways); with Node's own, hono/body-limit could not re-wrap a chunked body (500).
 * Listen errors (EADDRINUSE, EADDRNOTAVAIL, ENOTFOUND) reject with node's error, after the engine stopped.
 */
export async function serve(model: LlamaModel, options: ServeOptions = {}): Promise<KvkitServer> {
  checkServeNames(model, options, SERVE_OPTION_SET)
  checkListenOptions(options)
  const { host: hostOption, port, ...handlerOptions } = options
  const handler = serveHandler(model, handlerOptions)
  const hostname = hostOption ?? '127.0.0.1'
  const server = createAdaptorServer({ fetch: handler.fetch, hostname }) as Server
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port ?? 8080, hostname, () => {
      server.off('error', reject)
      resolve()
    })
  }).catch(async (e: unknown) => {
    // the caller gets no server to close: the engine's tokenizer thread and prefix cache stop here
    await handler.close()
    throw e
  })
  let closing = false
  // an answer that ends while the server closes (a 503, a stream's error event: the adapter writes it a
  // few ticks after the abort) leaves its connection idle; closing it then keeps close() prompt, where
  // the 1 s cut waited for it
  server.on('request', (_req, res: ServerResponse) => res.once('finish', () => closing && server.closeIdleConnections()))
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    engine: handler.engine,
    async close() {
      if (closing) return
      closing = true
      await handler.close()
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // connections whose answer went out close now; one still sending its body gets a moment, then is cut
        server.closeIdleConnections()
        setTimeout(() => server.closeAllConnections(), 1000).unref()
      })
    },
  }
}

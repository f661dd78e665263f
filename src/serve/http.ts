import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { DecodingModeError, ModelInputError, shownValue } from '../model/errors.js'
import { timingSafeEqual } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import type { LlamaModel } from '../model/model.js'
import { checkServeNames, ENGINE_OPTION_SET, ServeEngine, type EngineOptions, type Job } from './engine.js'
import { ApiError } from './errors.js'
import { chatChunk, chatCompletion, chatDelta, completionChunk, newMeta, textCompletion, ToolCallIds, usageChunk, type ToolCallObject } from './openai-objects.js'
import { chatRequestSchema, completionRequestSchema, parseBody } from './schema.js'

export interface ServeOptions extends EngineOptions {
  /** the address to listen on (default '127.0.0.1': this machine only) */
  host?: string
  /** the port (default 8080; 0 picks a free one, `server.port` says which) */
  port?: number
  /** when set, every /v1 request needs `Authorization: Bearer <apiKey>` (401 otherwise) */
  apiKey?: string
  /** largest request body in bytes (default 16 MiB; 413 past it) */
  maxBodyBytes?: number
}

export interface KvkitServer {
  readonly url: string
  readonly port: number
  readonly engine: ServeEngine
  /** stops listening, aborts running requests, closes connections, frees the prefix cache; the model stays the caller's */
  close(): Promise<void>
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError(res: ServerResponse, e: unknown): void {
  const err = e instanceof ApiError ? e : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`)
  if (res.headersSent) {
    // a stream already under way: the error goes as its last event (what OpenAI's streams do too)
    if (!res.writableEnded) res.end(`data: ${JSON.stringify(err.toJSON())}\n\n`)
    return
  }
  sendJson(res, err.status, err.toJSON())
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length
    if (size > limit) throw new ApiError(413, `the request body is larger than ${limit} bytes`)
    chunks.push(c)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`)
  }
}

function authorized(req: IncomingMessage, key: string): boolean {
  const got = Buffer.from(req.headers.authorization ?? '')
  const want = Buffer.from(`Bearer ${key}`)
  return got.length === want.length && timingSafeEqual(got, want)
}

function startStream(res: ServerResponse): (event: unknown) => void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
  return (event) => {
    if (!res.writableEnded) res.write(`data: ${JSON.stringify(event)}\n\n`)
  }
}

/** every option serve takes: the engine's and the listener's */
const SERVE_OPTION_SET: Record<keyof ServeOptions, true> = { ...ENGINE_OPTION_SET, host: true, port: true, apiKey: true, maxBodyBytes: true }

/**
 * Throws ModelInputError naming a listener option that is wrong, before the engine starts: node refused
 * a port of -1 or 1.5 with a RangeError, and took an empty host (every interface, where the default is
 * this machine only), an empty apiKey (no client can send it) and a number one.
 */
function checkListenOptions(o: ServeOptions): void {
  if (o.port !== undefined && !(Number.isInteger(o.port) && o.port >= 0 && o.port <= 65535)) throw new ModelInputError(`serve: port must be an integer in [0, 65535] (0: a free one), got ${shownValue(o.port)}`)
  if (o.host !== undefined && !(typeof o.host === 'string' && o.host !== '')) throw new ModelInputError(`serve: host must be a non-empty string (an address or name of this machine), got ${shownValue(o.host)}`)
  if (o.apiKey !== undefined && !(typeof o.apiKey === 'string' && o.apiKey !== '')) throw new ModelInputError(`serve: apiKey must be a non-empty string (leave it out for no key), got ${shownValue(o.apiKey)}`)
  if (o.maxBodyBytes !== undefined && !(Number.isInteger(o.maxBodyBytes) && o.maxBodyBytes >= 1)) throw new ModelInputError(`serve: maxBodyBytes must be a positive integer, got ${shownValue(o.maxBodyBytes)}`)
}

/**
 * `kvkit serve`: an OpenAI-compatible HTTP server on `model` (node:http). Endpoints: GET /v1/models,
 * GET /v1/models/{id}, POST /v1/chat/completions and POST /v1/completions (streamed as server-sent
 * events with `stream: true`), GET /health. Bodies are checked before any work (400 naming the field);
 * a client that disconnects aborts its request and frees its KV. See ServeEngine for reuse and the KV
 * budget. Options are checked before anything starts (ModelInputError naming the option).
 */
export async function serve(model: LlamaModel, options: ServeOptions = {}): Promise<KvkitServer> {
  checkServeNames(model, options, SERVE_OPTION_SET)
  checkListenOptions(options)
  // every request would fail in generate(): refused before the server listens
  if (model.config.diffusion)
    throw new DecodingModeError(`serve: ${model.config.architecture} is a masked diffusion LM, decoded by iterative unmasking (model.diffusionGenerate); the server generates causally`)
  // the listener's options are not the engine's
  const engineOptions = Object.fromEntries(Object.entries(options).filter(([k]) => Object.hasOwn(ENGINE_OPTION_SET, k))) as EngineOptions
  const engine = new ServeEngine(model, engineOptions)
  const limit = options.maxBodyBytes ?? 16 * 2 ** 20
  const running = new Set<AbortController>()
  let closing = false

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0].replace(/\/+$/, '') || '/'
    if (path === '/health') return sendJson(res, 200, { status: 'ok' })
    if (!path.startsWith('/v1/')) throw new ApiError(404, `no route ${path}`, null, 'not_found')
    if (options.apiKey !== undefined && !authorized(req, options.apiKey)) throw new ApiError(401, 'Incorrect API key provided', null, 'invalid_api_key')
    const model = { id: engine.modelId, object: 'model', created: 0, owned_by: 'kvkit' }
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (req.method !== 'GET') throw new ApiError(405, `${req.method} is not allowed on ${path}`)
      if (path === '/v1/models') return sendJson(res, 200, { object: 'list', data: [model] })
      const raw = path.slice('/v1/models/'.length)
      let id: string
      try {
        id = decodeURIComponent(raw)
      } catch {
        // a bad %-escape (%E0%A4%A) is the client's: no model has that name, not a server error (500)
        throw new ApiError(404, `The model '${raw}' does not exist`, 'model', 'model_not_found')
      }
      if (id !== engine.modelId) throw new ApiError(404, `The model '${id}' does not exist`, 'model', 'model_not_found')
      return sendJson(res, 200, model)
    }
    const chat = path === '/v1/chat/completions'
    if (!chat && path !== '/v1/completions') throw new ApiError(404, `no route ${path}`, null, 'not_found')
    if (req.method !== 'POST') throw new ApiError(405, `${req.method} is not allowed on ${path}`)
    if (closing) throw new ApiError(503, 'the server is shutting down')
    const body = await readJson(req, limit)
    const parsed = chat ? parseBody(chatRequestSchema, body) : parseBody(completionRequestSchema, body)
    // a server closing meanwhile stops the tokenizer thread under a request still being tokenized; one
    // tokenized (or its body read) after close() began must not run: the engine waits only for the jobs
    // running when it closes, then disposes the prefix cache
    const shuttingDown = () => new ApiError(503, 'the server is shutting down')
    const job = await (chat ? engine.chatJob(parsed as never) : engine.completionJob(parsed as never)).then(
      (j) => {
        if (closing) throw shuttingDown()
        return j
      },
      (e: unknown) => {
        throw closing ? shuttingDown() : e
      },
    )
    const abort = new AbortController()
    running.add(abort)
    // the response closing before it ended: the client went away, its request stops and frees its KV
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new DOMException('the client disconnected', 'AbortError'))
    })
    try {
      await respond(chat, job, parsed.stream === true, parsed.stream_options?.include_usage === true, abort.signal, res)
    } finally {
      running.delete(abort)
    }
  }

  async function respond(chat: boolean, job: Job, stream: boolean, includeUsage: boolean, signal: AbortSignal, res: ServerResponse): Promise<void> {
    const meta = newMeta(chat ? 'chatcmpl' : 'cmpl', engine.modelId)
    const ids = new ToolCallIds()
    if (stream) {
      const send = startStream(res)
      if (chat) send(chatChunk(meta, { role: 'assistant', content: '' }))
      const outcome = await engine.run(job, signal, (d) => send(chat ? chatChunk(meta, chatDelta(d, ids)) : completionChunk(meta, d.content ?? '')))
      send(chat ? chatChunk(meta, {}, outcome.finishReason) : completionChunk(meta, '', outcome.finishReason))
      if (includeUsage) send(usageChunk(meta, chat ? 'chat.completion.chunk' : 'text_completion', outcome.usage))
      res.end('data: [DONE]\n\n')
      return
    }
    let content = ''
    const calls: ToolCallObject[] = []
    const outcome = await engine.run(job, signal, (d) => {
      content += d.content ?? ''
      if (d.toolCalls) calls.push(...ids.next(d.toolCalls).map(({ index: _, ...c }) => c))
    })
    sendJson(res, 200, chat ? chatCompletion(meta, content, calls, outcome) : textCompletion(meta, content, outcome))
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => {
      // an aborted request has no one to answer, unless the server stopped it: its client is still there and
      // gets a 503 (a stream: an error event) rather than a connection cut without a word
      if (!(e instanceof DOMException && e.name === 'AbortError')) sendError(res, e)
      else if (closing) sendError(res, new ApiError(503, 'the server is shutting down'))
      else if (!res.writableEnded) res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  }).catch(async (e: unknown) => {
    // the caller gets no server to close: the engine's tokenizer thread and prefix cache stop here
    await engine.close(e)
    throw e
  })
  const addr = server.address() as AddressInfo
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  return {
    url: `http://${host}:${addr.port}`,
    port: addr.port,
    engine,
    async close() {
      if (closing) return
      closing = true
      const reason = new DOMException('the server is shutting down', 'AbortError')
      for (const a of running) a.abort(reason)
      await engine.close(reason)
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // connections whose answer went out close now; one still sending its body gets a moment, then is cut
        server.closeIdleConnections()
        setTimeout(() => server.closeAllConnections(), 1000).unref()
      })
    },
  }
}

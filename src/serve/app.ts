import { Hono, type Context, type MiddlewareHandler } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { streamSSE } from 'hono/streaming'
import { ModelInputError, shownValue } from '../model/errors.js'
import type { ServeEngine } from './engine.js'
import { ApiError } from './errors.js'
import { chatChunk, chatCompletion, chatDelta, completionChunk, newMeta, textCompletion, ToolCallIds, usageChunk, type ToolCallObject } from './openai-objects.js'
import { chatRequestSchema, completionRequestSchema, parseBody } from './schema.js'

/** the HTTP options of the app, whatever runtime listens */
export interface AppOptions {
  /** when set, every /v1 request needs `Authorization: Bearer <apiKey>` (401 otherwise) */
  apiKey?: string
  /** largest request body in bytes (default 16 MiB; 413 past it) */
  maxBodyBytes?: number
}

/** the server's OpenAI-compatible routes on `engine`, and how it stops */
export interface ServeApp {
  /** the Hono app: `app.fetch(request)` answers a web-standard Request (Node through @hono/node-server, Deno.serve, Bun.serve) */
  readonly app: Hono
  /** from now on requests get a 503; the running ones are aborted with `reason` (a stream ends with an error event) */
  stop(reason: unknown): void
}

/**
 * Whether `key` can be sent as `Authorization: Bearer <key>`: RFC 6750's b64token (letters, digits,
 * -._~+/ then any '='), the only tokens hono/bearer-auth takes from a header. No client could send another.
 */
export const isBearerToken = (key: string): boolean => /^[A-Za-z0-9._~+/-]+=*$/.test(key)

/**
 * Where a key fails isBearerToken, without echoing the key (it is a secret that would reach logs): the
 * first character out of place, by position and code point.
 */
export function notBearerAt(key: string): string {
  if (/^=+$/.test(key)) return 'it has no character before its trailing =s'
  const body = /^[A-Za-z0-9._~+/-]*/.exec(key)![0].length
  // past the token characters only '='s may follow: the first other one (or the first '=' at the start)
  const at = body === 0 ? 0 : body + key.slice(body).search(/[^=]/)
  const cp = key.codePointAt(at)!
  return `character ${at + 1} of ${key.length} is U+${cp.toString(16).toUpperCase().padStart(4, '0')}${cp > 0x20 && cp < 0x7f ? ` (${String.fromCodePoint(cp)})` : ''}`
}

/** what isBearerToken asks, for errors: "must be ${BEARER_TOKEN_RULE}" */
export const BEARER_TOKEN_RULE = "a bearer token (RFC 6750: letters, digits and -._~+/, then any '=')"

/** Throws ModelInputError naming an app option that is wrong (the caller's `where`, e.g. 'serve') */
export function checkAppOptions(o: AppOptions, where: string): void {
  if (o.apiKey !== undefined && !(typeof o.apiKey === 'string' && o.apiKey !== '')) throw new ModelInputError(`${where}: apiKey must be a non-empty string (leave it out for no key), got ${shownValue(o.apiKey)}`)
  if (o.apiKey !== undefined && !isBearerToken(o.apiKey))
    throw new ModelInputError(`${where}: apiKey must be ${BEARER_TOKEN_RULE}; ${notBearerAt(o.apiKey)}`)
  if (o.maxBodyBytes !== undefined && !(Number.isInteger(o.maxBodyBytes) && o.maxBodyBytes >= 1)) throw new ModelInputError(`${where}: maxBodyBytes must be a positive integer, got ${shownValue(o.maxBodyBytes)}`)
}

const SHUTTING_DOWN = 'the server is shutting down'
const isAbort = (e: unknown): boolean => e instanceof DOMException && e.name === 'AbortError'

/**
 * The path routes match: the request's path as sent (no %-decoding: a model id is decoded by its route,
 * where a bad escape is a 404 and not a 500), without the query and trailing slashes.
 */
function rawPath(request: Request): string {
  const url = request.url
  const start = url.indexOf('/', url.indexOf(':') + 3)
  const path = start < 0 ? '/' : url.slice(start).split(/[?#]/)[0]
  return path.replace(/\/+$/, '') || '/'
}

/**
 * kvkit serve's routes on Hono (hono.dev): GET /health, GET /v1/models and /v1/models/{id}, POST
 * /v1/chat/completions and /v1/completions (server-sent events with `stream: true`, hono/streaming).
 * Errors are OpenAI's shape (ApiError): 400 naming the field, 401 (hono/bearer-auth), 404, 405, 413
 * (hono/body-limit), 503 once stopping. A request whose client goes away (the request's signal) is
 * aborted and frees its KV. The app holds no listener: the caller serves `app.fetch` and calls stop().
 */
export function serveApp(engine: ServeEngine, options: AppOptions = {}): ServeApp {
  checkAppOptions(options, 'serve')
  const limit = options.maxBodyBytes ?? 16 * 2 ** 20
  const running = new Map<AbortController, () => void>()
  let stopping = false

  const app = new Hono({ getPath: rawPath })
  const fail = (c: Context, e: ApiError) => c.json(e.toJSON(), e.status as 400)
  /** what a request that threw gets: an aborted one a 503 when the server stopped it (its client is still there) */
  const apiError = (e: unknown): ApiError => {
    if (e instanceof ApiError) return e
    if (isAbort(e)) return stopping ? new ApiError(503, SHUTTING_DOWN) : new ApiError(499, 'the client disconnected')
    return new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`)
  }
  app.onError((e, c) => (e instanceof HTTPException ? e.getResponse() : fail(c, apiError(e))))
  app.notFound((c) => fail(c, new ApiError(404, `no route ${c.req.path}`, null, 'not_found')))
  const notAllowed: MiddlewareHandler = (c) => {
    throw new ApiError(405, `${c.req.method} is not allowed on ${c.req.path}`)
  }

  app.all('/health', (c) => c.json({ status: 'ok' }))
  if (options.apiKey !== undefined) {
    const unauthorized = (c: Context) => fail(c, new ApiError(401, 'Incorrect API key provided', null, 'invalid_api_key'))
    // a missing, malformed (hono's 400) or wrong header: one 401 in OpenAI's shape, as OpenAI answers all three
    const auth = bearerAuth({ token: options.apiKey, noAuthenticationHeader: { message: unauthorized }, invalidAuthenticationHeader: { message: unauthorized }, invalidToken: { message: unauthorized } })
    // Hono's /v1/* takes /v1 itself too: that is no route (404) with a key or without
    app.use('/v1/*', (c, next) => (c.req.path === '/v1' ? next() : auth(c, next)))
  }
  const modelObject = () => ({ id: engine.modelId, object: 'model', created: 0, owned_by: 'kvkit' })
  app.get('/v1/models', (c) => c.json({ object: 'list', data: [modelObject()] }))
  app.get('/v1/models/*', (c) => {
    const raw = c.req.path.slice('/v1/models/'.length)
    let id: string
    try {
      id = decodeURIComponent(raw)
    } catch {
      // a bad %-escape (%E0%A4%A) is the client's: no model has that name, not a server error (500)
      throw new ApiError(404, `The model '${raw}' does not exist`, 'model', 'model_not_found')
    }
    if (id !== engine.modelId) throw new ApiError(404, `The model '${id}' does not exist`, 'model', 'model_not_found')
    return c.json(modelObject())
  })
  app.all('/v1/models', notAllowed)
  app.all('/v1/models/*', notAllowed)

  // refused before its body is read once stopping
  const admit: MiddlewareHandler = async (_, next) => {
    if (stopping) throw new ApiError(503, SHUTTING_DOWN)
    await next()
  }
  const limitBody = bodyLimit({ maxSize: limit, onError: (c) => fail(c, new ApiError(413, `the request body is larger than ${limit} bytes`)) })
  for (const [path, chat] of [['/v1/chat/completions', true], ['/v1/completions', false]] as const) {
    app.post(path, admit, limitBody, (c) => complete(c, chat))
    app.all(path, notAllowed)
  }

  async function complete(c: Context, chat: boolean): Promise<Response> {
    const text = await c.req.text()
    // taken after the body: @hono/node-server reads a body directly only while the request's signal (which
    // makes it build a web Request) is untouched, ~4 ms a request otherwise. After body-limit re-wrapped a
    // chunked body, this request's signal follows the first one's.
    const clientGone = c.req.raw.signal
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch (e) {
      throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`)
    }
    const parsed = chat ? parseBody(chatRequestSchema, body) : parseBody(completionRequestSchema, body)
    // a server stopping meanwhile stops the tokenizer thread under a request still being tokenized; one
    // tokenized after stop() must not run: the engine waits only for the jobs running when it closes,
    // then disposes the prefix cache
    const job = await (chat ? engine.chatJob(parsed as never) : engine.completionJob(parsed as never)).then(
      (j) => {
        if (stopping) throw new ApiError(503, SHUTTING_DOWN)
        return j
      },
      (e: unknown) => {
        throw stopping ? new ApiError(503, SHUTTING_DOWN) : e
      },
    )
    const abort = new AbortController()
    const gone = () => abort.abort(new DOMException('the client disconnected', 'AbortError'))
    // the response closing before it ended (@hono/node-server, Deno and Bun abort the request's signal): the
    // client went away, its request stops and frees its KV
    if (clientGone.aborted) gone()
    else clientGone.addEventListener('abort', gone, { once: true })
    running.set(abort, () => clientGone.removeEventListener('abort', gone))
    const done = () => {
      running.get(abort)?.()
      running.delete(abort)
    }
    const meta = newMeta(chat ? 'chatcmpl' : 'cmpl', engine.modelId)
    const ids = new ToolCallIds()
    if (parsed.stream !== true) {
      try {
        let content = ''
        const calls: ToolCallObject[] = []
        const outcome = await engine.run(job, abort.signal, (d) => {
          content += d.content ?? ''
          if (d.toolCalls) calls.push(...ids.next(d.toolCalls).map(({ index: _, ...c }) => c))
        })
        return c.json(chat ? chatCompletion(meta, content, calls, outcome) : textCompletion(meta, content, outcome))
      } finally {
        done()
      }
    }
    const includeUsage = parsed.stream_options?.include_usage === true
    return streamSSE(c, async (sse) => {
      // the response stream cancelled: the same client gone, seen by the streaming helper
      sse.onAbort(gone)
      // each event is one line of JSON; the stream may have ended under a write (ignored by hono)
      const send = (event: unknown) => sse.writeSSE({ data: JSON.stringify(event) })
      try {
        // not awaited: a write settles once the adapter has read it, and the job need not wait for the role event
        if (chat) void send(chatChunk(meta, { role: 'assistant', content: '' }))
        const outcome = await engine.run(job, abort.signal, (d) => void send(chat ? chatChunk(meta, chatDelta(d, ids)) : completionChunk(meta, d.content ?? '')))
        await send(chat ? chatChunk(meta, {}, outcome.finishReason) : completionChunk(meta, '', outcome.finishReason))
        if (includeUsage) await send(usageChunk(meta, chat ? 'chat.completion.chunk' : 'text_completion', outcome.usage))
        await sse.writeSSE({ data: '[DONE]' })
      } catch (e) {
        // the error goes as the stream's last event (what OpenAI's streams do too); a client gone reads nothing
        if (!(isAbort(e) && !stopping)) await send(apiError(e).toJSON())
      } finally {
        done()
      }
    })
  }

  return {
    app,
    stop(reason) {
      if (stopping) return
      stopping = true
      for (const a of running.keys()) a.abort(reason)
    },
  }
}

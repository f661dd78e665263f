import { DecodingModeError } from '../model/errors.js'
import type { LlamaModel } from '../model/model.js'
import { checkAppOptions, serveApp, type AppOptions } from './app.js'
import { checkServeNames, ENGINE_OPTION_SET, ServeEngine, type EngineOptions } from './engine.js'

/** the engine's options and the app's: everything but where to listen */
export interface HandlerOptions extends EngineOptions, AppOptions {}

/** `kvkit serve` without a listener: a fetch handler for any server of web-standard Requests */
export interface KvkitHandler {
  readonly engine: ServeEngine
  /** answers one request (`Deno.serve(h.fetch)`, `Bun.serve({ fetch: h.fetch })`, a worker's fetch) */
  fetch(request: Request): Promise<Response>
  /** aborts running requests (a 503; a stream's error event), refuses new ones, frees the prefix cache; the model stays the caller's */
  close(): Promise<void>
}

/** every option serveHandler takes */
export const HANDLER_OPTION_SET: Record<keyof HandlerOptions, true> = { ...ENGINE_OPTION_SET, apiKey: true, maxBodyBytes: true }

/**
 * `kvkit serve`'s OpenAI-compatible API on `model` as a fetch handler (the Hono app of serveApp), for
 * Deno.serve and Bun.serve, which serve Hono apps as they are; serve() puts the same handler on a
 * node:http server. Options are checked before the engine starts (ModelInputError naming the option);
 * a masked diffusion LM is refused (DecodingModeError). A client that goes away aborts its request and
 * frees its KV where the runtime aborts the request's signal (Node's adapter, Deno and Bun do).
 */
export function serveHandler(model: LlamaModel, options: HandlerOptions = {}): KvkitHandler {
  checkServeNames(model, options, HANDLER_OPTION_SET)
  checkAppOptions(options, 'serve')
  // every request would fail in generate(): refused before anything starts
  if (model.config.diffusion)
    throw new DecodingModeError(`serve: ${model.config.architecture} is a masked diffusion LM, decoded by iterative unmasking (model.diffusionGenerate); the server generates causally`)
  // the app's options are not the engine's
  const engineOptions = Object.fromEntries(Object.entries(options).filter(([k]) => Object.hasOwn(ENGINE_OPTION_SET, k))) as EngineOptions
  const engine = new ServeEngine(model, engineOptions)
  const { app, stop } = serveApp(engine, { apiKey: options.apiKey, maxBodyBytes: options.maxBodyBytes })
  let closed: Promise<void> | undefined
  return {
    engine,
    fetch: async (request) => app.fetch(request),
    close() {
      if (closed === undefined) {
        const reason = new DOMException('the server is shutting down', 'AbortError')
        stop(reason)
        closed = engine.close(reason)
      }
      return closed
    },
  }
}

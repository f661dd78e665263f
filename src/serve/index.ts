// kvkit/serve: the OpenAI-compatible server of `kvkit serve` (serve: Node), its fetch handler (serveHandler:
// Deno.serve, Bun.serve), and its parts for embedding.
export { serve, type ServeOptions, type KvkitServer } from './http.js'
export { serveHandler, type HandlerOptions, type KvkitHandler } from './handler.js'
export { serveApp, type AppOptions, type ServeApp } from './app.js'
export { ServeEngine, type EngineOptions, type EngineStats, type Job, type Delta, type Outcome, type Usage, type ToolCall } from './engine.js'
export type { ToolPins, PinStats } from './tool-pins.js'
export { ChatTemplate, CHATML_TEMPLATE, type TemplateMessage, type TemplateTool } from './chat-template.js'
export { ToolCallStream, parseToolCall, type ParsedToolCall } from './tool-calls.js'
export { KVScheduler } from './scheduler.js'
export type { BlendOptions, DocumentPlan, DocumentReuse } from './documents.js'
export { ApiError } from './errors.js'
// what serve() throws for a bad option or a masked diffusion LM, the root's classes
export { ModelInputError, DecodingModeError } from '../model/errors.js'

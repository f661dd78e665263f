// The response objects of OpenAI's chat completions and completions APIs (their API reference's
// `chat.completion`, `chat.completion.chunk` and `text_completion`), built from the engine's deltas.
import type { Delta, Outcome, ToolCall, Usage } from './engine.js'

export interface ResponseMeta {
  id: string
  created: number
  model: string
}

export interface ToolCallObject {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
}

/** numbers the calls of a response (a streamed delta names each call's index among them) */
export class ToolCallIds {
  private n = 0

  next(calls: readonly ToolCall[]): (ToolCallObject & { index: number })[] {
    return calls.map((c) => ({ index: this.n++, id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } }))
  }
}

export function newMeta(prefix: 'chatcmpl' | 'cmpl', model: string): ResponseMeta {
  return { id: `${prefix}-${crypto.randomUUID().replace(/-/g, '')}`, created: Math.floor(Date.now() / 1000), model }
}

export function chatChunk(meta: ResponseMeta, delta: Record<string, unknown>, finishReason: Outcome['finishReason'] | null = null) {
  return { ...meta, object: 'chat.completion.chunk', choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] }
}

/** the delta of a chunk for an engine delta */
export function chatDelta(d: Delta, ids: ToolCallIds): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  if (d.content) out.content = d.content
  if (d.toolCalls?.length) out.tool_calls = ids.next(d.toolCalls)
  return out
}

/** the last chunk when stream_options.include_usage: no choices, the usage */
export function usageChunk(meta: ResponseMeta, object: 'chat.completion.chunk' | 'text_completion', usage: Usage) {
  return { ...meta, object, choices: [], usage }
}

export function chatCompletion(meta: ResponseMeta, content: string, calls: ToolCallObject[], outcome: Outcome) {
  const message: Record<string, unknown> = { role: 'assistant', content: content === '' && calls.length ? null : content, refusal: null }
  if (calls.length) message.tool_calls = calls
  return { ...meta, object: 'chat.completion', choices: [{ index: 0, message, logprobs: null, finish_reason: outcome.finishReason }], usage: outcome.usage }
}

export function completionChunk(meta: ResponseMeta, text: string, finishReason: Outcome['finishReason'] | null = null) {
  return { ...meta, object: 'text_completion', choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }] }
}

export function textCompletion(meta: ResponseMeta, text: string, outcome: Outcome) {
  return { ...completionChunk(meta, text, outcome.finishReason), usage: outcome.usage }
}

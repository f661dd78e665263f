import { z } from 'zod'
import { ApiError } from './errors.js'

// Request bodies of OpenAI's chat completions and (legacy) completions APIs, as far as kvkit serves
// them, checked with zod. A field kvkit cannot honour (n > 1, logprobs, penalties, images, JSON mode) is
// refused by name rather than ignored; fields OpenAI defines that change nothing here (user, metadata,
// store, parallel_tool_calls) are accepted. Extensions: `kv_policy` (a kvkit policy spec for this request),
// `cache_salt` (vLLM's name: a tenant salt for the prefix cache), `top_k` (vLLM's and llama.cpp's),
// `program_id` (the agent program a call belongs to: Continuum's unit of scheduling, `--scheduler program`),
// `documents` on chat requests (retrieved passages before the conversation, each cached on its own:
// CacheBlend; with `sources`, a Graph-KV graph over them; documents.ts).

const count = z.number().int().positive()
const unsupportedZero = z.literal(0, { error: 'only 0 is supported' }).nullish()

const textPart = z.strictObject({ type: z.literal('text', { error: 'only text content parts are supported' }), text: z.string() })
const content = z.union([z.string(), z.array(textPart)], { error: 'must be a string or an array of text parts' })

const toolCall = z.strictObject({
  id: z.string(),
  type: z.literal('function'),
  function: z.strictObject({ name: z.string().min(1), arguments: z.string() }),
})

const message = z.discriminatedUnion(
  'role',
  [
    z.strictObject({ role: z.literal('system'), content, name: z.string().optional() }),
    z.strictObject({ role: z.literal('developer'), content, name: z.string().optional() }),
    z.strictObject({ role: z.literal('user'), content, name: z.string().optional() }),
    z.strictObject({
      role: z.literal('assistant'),
      content: content.nullish(),
      name: z.string().optional(),
      tool_calls: z.array(toolCall).optional(),
      refusal: z.string().nullish(),
    }),
    z.strictObject({ role: z.literal('tool'), content, tool_call_id: z.string() }),
  ],
  { error: 'role must be one of system, developer, user, assistant, tool' },
)

const tool = z.strictObject({
  type: z.literal('function'),
  function: z.strictObject({
    name: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'a function name is 1-64 letters, digits, _ or -'),
    description: z.string().optional(),
    parameters: z.record(z.string(), z.unknown()).optional(),
    strict: z.boolean().nullish(),
  }),
})

const toolChoice = z.union(
  [z.enum(['none', 'auto', 'required']), z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string() }) })],
  { error: "must be 'none', 'auto', 'required' or { type: 'function', function: { name } }" },
)

/** the sampling and serving fields both endpoints share */
const common = {
  model: z.string({ error: 'is required (a string: GET /v1/models lists the one served)' }),
  max_tokens: count.nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  seed: z.number().int().nullish(),
  stop: z.union([z.string().min(1), z.array(z.string().min(1)).max(4)], { error: 'must be a non-empty string or up to 4 of them' }).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
  n: z.literal(1, { error: 'only n = 1 is supported' }).nullish(),
  frequency_penalty: unsupportedZero,
  presence_penalty: unsupportedZero,
  logprobs: z.literal(false, { error: 'logprobs are not supported' }).nullish(),
  user: z.string().optional(),
  kv_policy: z.string().min(1).nullish(),
  // vLLM refuses an empty salt too: '' would be the shared, unsalted cache, which the caller did not ask for
  cache_salt: z.string().min(1, { error: 'must be a non-empty string (leave it out for the shared cache)' }).nullish(),
  program_id: z.string().min(1).nullish(),
}

/** a document: its text, and for a Graph-KV target the indices of the documents it attends to */
const document = z.strictObject({
  text: z.string().min(1),
  sources: z.array(z.number().int().min(0), { error: 'must be an array of document indices' }).min(1).optional(),
})

export const chatRequestSchema = z.strictObject({
  ...common,
  messages: z.array(message).min(1),
  max_completion_tokens: count.nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: toolChoice.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  response_format: z.strictObject({ type: z.literal('text', { error: 'only text responses are supported' }) }).nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  store: z.boolean().nullish(),
  documents: z.array(document, { error: 'must be an array of { text, sources? }' }).min(1).nullish(),
})

export const completionRequestSchema = z.strictObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1), z.array(z.number().int().min(0)).min(1)], {
    error: 'must be a string, an array of one string, or an array of token ids',
  }),
  echo: z.literal(false, { error: 'echo is not supported' }).nullish(),
  suffix: z.null({ error: 'suffix is not supported' }).optional(),
  best_of: z.literal(1, { error: 'only best_of = 1 is supported' }).nullish(),
})

export type ChatRequest = z.infer<typeof chatRequestSchema>
export type CompletionRequest = z.infer<typeof completionRequestSchema>
export type ChatMessage = ChatRequest['messages'][number]

/** `messages[1].content` from zod's path */
function paramOf(path: readonly PropertyKey[]): string {
  let s = ''
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${String(p)}` : String(p)
  return s
}

/** parses a request body with `schema`, or throws a 400 ApiError naming the first bad field */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(400, 'the request body must be a JSON object')
  const r = schema.safeParse(body)
  if (r.success) return r.data
  const issue = r.error.issues[0]
  if (issue.code === 'unrecognized_keys') {
    const param = paramOf([...issue.path, issue.keys[0]])
    throw new ApiError(400, `Unrecognized request argument supplied: ${param}`, param)
  }
  const param = paramOf(issue.path)
  throw new ApiError(400, `${param || 'body'}: ${issue.message}`, param || null)
}

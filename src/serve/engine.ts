import type { LlamaModel } from '../model/model.js'
import type { FinishReason, GenerateOptions, KVReuse } from '../model/types.js'
import { ModelInputError, optionNamesProblem, shownValue } from '../model/errors.js'
import { resolvePolicy } from '../policies/config.js'
import type { Policy } from '../policies/types.js'
import { PolicySpecError } from '../policies/errors.js'
import { fileOptions } from '../policies/registry.js'
import { PrefixCache } from '../reuse/prefix-cache.js'
import type { EvictionName } from '../reuse/block-eviction.js'
import { ChatTemplate, type TemplateMessage, type TemplateTool } from './chat-template.js'
import { ApiError } from './errors.js'
import type { ChatMessage, ChatRequest, CompletionRequest } from './schema.js'
import { KVScheduler, type QueueOrder } from './scheduler.js'
import { forcedCallPrefix, ToolCallStream, type ParsedToolCall } from './tool-calls.js'
import { ToolPins, type PinStats } from './tool-pins.js'
import { EditReuse } from './edit-reuse.js'
import { onReuseClose } from './reuse-close.js'
import type { KVShareOptions } from '../reuse/kvshare.js'
import { checkDocuments, DocumentReuse, planDocuments, planIds, type BlendOptions, type DocumentPlan } from './documents.js'
import { HfTokenizerAdapter } from '../model/tokenizer.js'
import { TokenizerThread } from './tokenizer-thread.js'

export interface EngineOptions {
  /** the id `/v1/models` lists and requests name (default 'kvkit') */
  modelId?: string
  /** the model's chat template (default: the ChatML fallback, ChatTemplate.fromTokenizerConfig({})) */
  template?: ChatTemplate
  /** the KV policy of requests that name none (a spec string; default 'full', which reuses KV across requests) */
  policy?: string
  /** KV tokens the server may hold at once: cached prefix blocks plus running requests (default 4 x the model's context) */
  kvBudget?: number
  /** of kvBudget, the tokens kept for the prefix cache's blocks between requests (default half of it) */
  cacheTokens?: number
  /** tokens per prefix-cache block and KV page (default 16) */
  blockTokens?: number
  /** the prefix cache's eviction order (default 'lru') */
  eviction?: EvictionName
  /** requests decoded at once, interleaved token by token (default 4); more wait in arrival order */
  parallel?: number
  /** max_tokens of a request that gives none (default 256, less where the context ends sooner) */
  defaultMaxTokens?: number
  /**
   * KVShare for prompts that edit an earlier one (edit-reuse.ts): true for its defaults, or its options
   * (ratio, checkLayer, minReuse, maxRequests, decodeRefresh). Off by default: an edited prompt then
   * runs on approximate KV (the prefix cache's reuse is exact), and kept prompts take KV budget.
   */
  editReuse?: boolean | KVShareOptions
  /**
   * the order waiting requests start in: 'fcfs' (default); 'kvshare', KVShare's cache-aware order by
   * the share of the prompt expected from cache plus the wait over `agingMs` (default 10000 ms); or
   * 'program', Continuum's first come first served by agent program (a request's `program_id`)
   */
  scheduler?: QueueOrder
  agingMs?: number
  /**
   * CacheBlend for chat requests' `documents` (documents.ts): true (default) for CacheBlend's
   * defaults, its options ({ ratio, checkLayer }), or false, where documents are plain text on the
   * prefix cache. On by default because only a request that sends `documents` is affected, and sending
   * them asks for chunks reused in any order (CacheBlend's approximation at ratio < 1). A request whose
   * documents declare `sources` is served by Graph-KV either way: the graph changes what it means.
   */
  blend?: boolean | BlendOptions
  /**
   * tokenize requests' text in a worker thread (default true) where the model's tokenizer can be built
   * there (a tokenizer.json one: HfTokenizerAdapter), so a long prompt does not hold the event loop
   * while it is tokenized; false, or another tokenizer: on the event loop
   */
  tokenizerThread?: boolean
}

/** how many distinct policy specs a server keeps made (requests may name any) */
const MAX_POLICIES = 64

/** every option ServeEngine takes; the record's type makes a new EngineOptions field fail to compile until listed */
export const ENGINE_OPTION_SET: Record<keyof EngineOptions, true> = {
  modelId: true, template: true, policy: true, kvBudget: true, cacheTokens: true, blockTokens: true, eviction: true, parallel: true,
  defaultMaxTokens: true, editReuse: true, scheduler: true, agingMs: true, blend: true, tokenizerThread: true,
}

/**
 * Throws ModelInputError naming what is wrong with a server's model or options that no other check reads
 * before the first request: a model that is not one (a TypeError) or was disposed (a 500 for every request), an option it does not know (ignored, its default used), an empty or non-string
 * modelId (no client can name it), a template that is not a ChatTemplate (a TypeError at the first chat).
 */
export function checkServeNames(model: unknown, options: unknown, known: Readonly<Record<string, true>>): void {
  if (typeof (model as LlamaModel | null)?.generate !== 'function' || typeof (model as LlamaModel).config !== 'object')
    throw new ModelInputError(`serve: model must be a loaded model (loadModel), got ${model === null ? 'null' : typeof model}`)
  // every request would be a 500 ('model used after dispose()')
  if ((model as LlamaModel).disposed === true) throw new ModelInputError('serve: model was disposed (dispose()); load it again to serve it')
  const problem = optionNamesProblem(options, known)
  if (problem !== undefined) throw new ModelInputError(`serve: ${problem}`)
  const o = options as EngineOptions
  if (o.modelId !== undefined && !(typeof o.modelId === 'string' && o.modelId !== '')) throw new ModelInputError(`serve: modelId must be a non-empty string, got ${shownValue(o.modelId)}`)
  if (o.template !== undefined && !(o.template instanceof ChatTemplate))
    throw new ModelInputError(`serve: template must be a ChatTemplate (ChatTemplate.fromTokenizerConfig(config), CHATML_TEMPLATE), got ${shownValue(o.template)}`)
}

/** A tool call with the id the server gave it (`call_...`), which the client's tool result names. */
export interface ToolCall extends ParsedToolCall {
  id: string
}

/** What a streamed request produces, piece by piece. */
export interface Delta {
  content?: string
  toolCalls?: ToolCall[]
}

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details: { cached_tokens: number }
}

export interface Outcome {
  /** OpenAI's finish reasons: 'stop' (a stop string or the end-of-sequence token), 'length', 'tool_calls' */
  finishReason: 'stop' | 'length' | 'tool_calls'
  usage: Usage
}

/** A request checked and tokenized, ready to run: everything that can be refused has been. */
export interface Job {
  ids: number[]
  maxTokens: number
  /** KV tokens it may grow to, in whole pages */
  reservation: number
  options: GenerateOptions
  /** tools are in play: the output goes through the tool-call parser */
  tools: boolean
  /** a tool_choice naming a function: the prompt opens its call */
  forcedTool?: string
  /** the prefix-cache tenant ('' by default) */
  salt: string
  /** ids of the tool calls whose results the messages bring (a paused session resuming) */
  resumes: string[]
  /** the agent program it belongs to (`program_id`), if any */
  program?: string
  /** the chat request's `documents`, which open `ids` (CacheBlend's chunks, Graph-KV's graph) */
  documents?: DocumentPlan
}

export interface EngineStats {
  requests: number
  /** the most bytes the prefix cache's page store held at once (live pages plus pooled ones), sampled per token */
  peakKvBytes: number
  /** sessions paused for tool calls: pinned, resumed, expired, reclaimed (ToolPins) */
  pins: PinStats
}

// 'cancelled' never reaches a response: the engine iterates every generation to its end
const FINISH: Record<FinishReason, 'stop' | 'length'> = { stop: 'stop', eos: 'stop', length: 'length', context: 'length', cancelled: 'stop' }

/** OpenAI's refusal of a prompt past the context; `tokens` is the count, or 'at least N' from the tokenizer's bound */
function contextExceeded(param: string, ctx: number, tokens: string): ApiError {
  return new ApiError(400, `${param}: this model's maximum context length is ${ctx} tokens; your ${param} resulted in ${tokens} tokens`, param, 'context_length_exceeded')
}

function text(content: ChatMessage['content']): string {
  if (content === null || content === undefined) return ''
  return typeof content === 'string' ? content : content.map((p) => p.text).join('')
}

/** OpenAI messages as chat templates take them (Hugging Face's convention: tool-call arguments as objects) */
export function templateMessages(messages: readonly ChatMessage[]): TemplateMessage[] {
  return messages.map((m) => {
    const out: TemplateMessage = { role: m.role === 'developer' ? 'system' : m.role, content: text(m.content) }
    if ('name' in m && m.name !== undefined) out.name = m.name
    if (m.role === 'tool') out.tool_call_id = m.tool_call_id
    if (m.role === 'assistant' && m.tool_calls?.length) {
      out.tool_calls = m.tool_calls.map((c) => {
        let args: unknown = c.function.arguments
        try {
          args = JSON.parse(c.function.arguments)
        } catch {
          // arguments that are not JSON are rendered as the string they are
        }
        return { id: c.id, type: 'function' as const, function: { name: c.function.name, arguments: args } }
      })
    }
    return out
  })
}

/**
 * The serving side of `kvkit serve`, without HTTP: turns checked OpenAI requests into generations on
 * one model. Requests on the full cache share KV through a PrefixCache (their `cached_tokens`); a
 * request with a KV policy (`kv_policy`, or the server's) runs on its own compressed cache. With
 * `editReuse`, a prompt that edits an earlier one runs on KVShare's aligned KV (edit-reuse.ts). A chat
 * request's `documents` run on CacheBlend's blend of kept chunks, or on Graph-KV where they declare
 * sources (documents.ts).
 * Admission keeps every KV page within `kvBudget`: the prefix cache keeps at most `cacheTokens` of
 * blocks no request holds, running requests reserve what they can grow to, and kept prompts and paused
 * sessions are pins reclaimed when a waiting request needs the room (KVScheduler, in the order
 * `scheduler` names).
 */
export class ServeEngine {
  readonly modelId: string
  readonly template: ChatTemplate
  readonly prefixCache: PrefixCache
  readonly scheduler: KVScheduler
  readonly kvBudget: number
  readonly defaultMaxTokens: number
  readonly stats: EngineStats
  /** Continuum's TTL pins of sessions paused for tool calls */
  readonly pins: ToolPins
  /** KVShare for edited prompts (EngineOptions.editReuse), or null */
  readonly edits: EditReuse | null
  /** CacheBlend and Graph-KV for requests' `documents` */
  readonly documents: DocumentReuse
  /** prefill ms per token, a running mean over requests (what reloading a context would cost) */
  private prefillMsPerToken = 0
  private readonly defaultPolicy: string | undefined
  // each spec resolved once: a policy is a configuration (its state is a request's), and making one can
  // cost (RazorAttention calibrates: ~0.1-1.3 s a request when every request made its own)
  private readonly policies = new Map<string, Policy | null>()
  private readonly active = new Set<Promise<unknown>>()
  /** where requests' text is tokenized (EngineOptions.tokenizerThread), or null: on this thread */
  private readonly tokenizerThread: TokenizerThread | null

  constructor(
    readonly model: LlamaModel,
    options: EngineOptions = {},
  ) {
    checkServeNames(model, options, ENGINE_OPTION_SET)
    const ctx = model.config.maxPositions
    const budget = options.kvBudget ?? 4 * ctx
    const block = options.blockTokens ?? 16
    const cacheTokens = options.cacheTokens ?? Math.floor(budget / 2)
    const parallel = options.parallel ?? 4
    const dflt = options.defaultMaxTokens ?? 256
    const positive = (name: string, v: number) => {
      if (!(Number.isInteger(v) && v >= 1)) throw new ModelInputError(`serve: ${name} must be a positive integer, got ${v}`)
    }
    positive('kvBudget', budget)
    positive('blockTokens', block)
    positive('parallel', parallel)
    positive('defaultMaxTokens', dflt)
    if (!(Number.isInteger(cacheTokens) && cacheTokens >= block && cacheTokens < budget))
      throw new ModelInputError(`serve: cacheTokens must be an integer in [blockTokens, kvBudget) = [${block}, ${budget}), got ${cacheTokens}`)
    if (options.policy !== undefined) {
      try {
        this.policyOf(options.policy, 'policy')
      } catch (e) {
        throw e instanceof ApiError ? new ModelInputError(`serve: ${e.message}`) : e
      }
    }
    this.modelId = options.modelId ?? 'kvkit'
    this.template = options.template ?? ChatTemplate.fromTokenizerConfig({})
    this.defaultPolicy = options.policy
    this.kvBudget = budget
    this.defaultMaxTokens = dflt
    const maxBlocks = Math.floor(cacheTokens / block)
    this.prefixCache = new PrefixCache(model, { blockTokens: block, maxBlocks, eviction: options.eviction ?? 'lru' })
    try {
      this.scheduler = new KVScheduler(budget - maxBlocks * block, parallel, { order: options.scheduler, agingMs: options.agingMs })
    } catch (e) {
      throw new ModelInputError(`serve: ${(e as Error).message}`)
    }
    this.pins = new ToolPins(this.scheduler, budget)
    const edit = options.editReuse
    if (edit !== undefined && edit !== false && edit !== true && (typeof edit !== 'object' || edit === null))
      throw new ModelInputError(`serve: editReuse must be a boolean or KVShare's options, got ${typeof edit}`)
    try {
      this.edits = edit ? new EditReuse(model, this.prefixCache, this.scheduler, edit === true ? {} : edit) : null
    } catch (e) {
      throw new ModelInputError(`serve: editReuse: ${(e as Error).message}`)
    }
    const blend = options.blend ?? true
    if (typeof blend !== 'boolean' && (typeof blend !== 'object' || blend === null))
      throw new ModelInputError(`serve: blend must be a boolean or CacheBlend's options ({ ratio, checkLayer }), got ${blend === null ? 'null' : typeof blend}`)
    try {
      this.documents = new DocumentReuse(model, this.scheduler, blend === false ? null : blend === true ? {} : { ratio: blend.ratio, checkLayer: blend.checkLayer })
    } catch (e) {
      throw new ModelInputError(`serve: blend: ${(e as Error).message}`)
    }
    this.stats = { requests: 0, peakKvBytes: 0, pins: this.pins.stats }
    // last: nothing above may throw once the worker runs
    this.tokenizerThread = options.tokenizerThread !== false && model.tokenizer instanceof HfTokenizerAdapter ? new TokenizerThread(model.tokenizer.source) : null
  }

  /**
   * A request's text as token ids (no special tokens), as model.tokenizer.encode gives them: in the
   * tokenizer thread where there is one, so the event loop serves other clients meanwhile. Every text a
   * request brings is tokenized here, after the refusals that need no tokens (refuseBeyondContext):
   * a prompt the bound cannot refuse may still hold up to about the context x the longest vocabulary
   * entry in characters, megabytes for a long-context model, seconds of tokenizing.
   */
  encode(text: string): Promise<number[]> {
    const thread = this.tokenizerThread
    const here = async () => this.model.tokenizer.encode(text)
    // a text that is not one gets the tokenizer's own ModelInputError: the worker's would cross as a plain Error
    if (!thread || thread.broken || typeof text !== 'string') return here()
    // a worker that failed on its own (its script left out of a bundle): the event loop tokenizes, as before
    return thread.encode(text).catch((e: unknown) => (thread.broken ? here() : Promise.reject(e)))
  }

  /** bytes of KV one token takes across layers and heads (float32 keys and values) */
  get bytesPerToken(): number {
    const { layers, kvHeads, headDim } = this.model.config
    return layers * kvHeads * 2 * headDim * 4
  }

  /**
   * A policy spec checked against the model and made once (the last MAX_POLICIES specs kept): null for the
   * full cache; a bad spec is a 400 naming `param`.
   */
  private policyOf(spec: string, param: string): Policy | null {
    try {
      // a request's spec reading a file would read the server's (trimkv:gatesFile=/etc/passwd said
      // whether it exists and how it parses; razorattention:calibrationFile ran on any readable text);
      // checked before the made ones, which hold the server's own
      const files = param === 'kv_policy' ? fileOptions(spec) : []
      if (files.length) throw new ApiError(400, `${param}: ${files.join(', ')} names a file on the server, which a request may not; the server's --policy (ServeOptions.policy) may`, param)
      const made = this.policies.get(spec)
      if (made !== undefined) return made
      const policy = resolvePolicy(spec, this.model.config)
      if (this.policies.size >= MAX_POLICIES) this.policies.delete(this.policies.keys().next().value!)
      this.policies.set(spec, policy)
      return policy
    } catch (e) {
      if (e instanceof PolicySpecError) throw new ApiError(400, `${param}: ${e.message}`, param)
      throw e
    }
  }

  private checkModel(model: string): void {
    if (model !== this.modelId) throw new ApiError(404, `The model '${model}' does not exist; this server serves '${this.modelId}'`, 'model', 'model_not_found')
  }

  /**
   * The context-length refusal, before tokenizing, of texts whose tokens (with `extra` more) cannot fit
   * even by the tokenizer's lower bound (Tokenizer.minTokens, token-bound.ts): a message of megabytes
   * would otherwise hold the event loop, and every other client's stream, for seconds before job()'s
   * same refusal. The same 400 body, its count given as 'at least N'.
   */
  private refuseBeyondContext(texts: readonly string[], extra: number, promptParam: string): void {
    const tokenizer = this.model.tokenizer
    const ctx = this.model.config.maxPositions
    let least = extra
    for (const t of texts) least += tokenizer.minTokens?.(t, Math.max(0, ctx - least)) ?? 0
    if (least >= ctx) throw contextExceeded(promptParam, ctx, `at least ${least}`)
  }

  /** a chat request made into a job; rejects with ApiError (400, 404) naming the field at fault */
  async chatJob(req: ChatRequest): Promise<Job> {
    this.checkModel(req.model)
    const tools = req.tools ?? []
    const choice = req.tool_choice ?? (tools.length ? 'auto' : 'none')
    if (req.tool_choice && req.tool_choice !== 'none' && tools.length === 0) throw new ApiError(400, 'tool_choice needs tools', 'tool_choice')
    let forced: string | undefined
    if (typeof choice === 'object') {
      forced = choice.function.name
      if (!tools.some((t) => t.function.name === forced)) throw new ApiError(400, `tool_choice: no tool is named ${JSON.stringify(forced)}`, 'tool_choice.function.name')
    } else if (choice === 'required') {
      if (tools.length !== 1) throw new ApiError(400, "tool_choice 'required' is served for one tool only: name the function ({ type: 'function', function: { name } })", 'tool_choice')
      forced = tools[0].function.name
    }
    const shown: TemplateTool[] | undefined = choice === 'none' ? undefined : tools.map((t) => ({ type: 'function', function: t.function }))
    let prompt = this.template.render(templateMessages(req.messages), shown)
    if (forced !== undefined) prompt += forcedCallPrefix(forced)
    const maxTokens = req.max_completion_tokens ?? req.max_tokens
    // the documents' own errors come before the context's refusal, as when they were checked while tokenized
    if (req.documents) checkDocuments(req.documents)
    this.refuseBeyondContext([...(req.documents ?? []).map((d) => `${d.text}\n`), prompt], 0, 'messages')
    // documents open the prompt, before what the template renders
    const documents = req.documents ? await planDocuments((t) => this.encode(t), req.documents) : undefined
    const ids = [...(documents ? planIds(documents) : []), ...(await this.encode(prompt))]
    const job = this.job(ids, maxTokens, req.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens', 'messages', req, choice !== 'none', forced, documents)
    job.resumes = req.messages.flatMap((m) => (m.role === 'tool' ? [m.tool_call_id] : []))
    return job
  }

  /** a (legacy) completion request made into a job; rejects with ApiError as chatJob */
  async completionJob(req: CompletionRequest): Promise<Job> {
    this.checkModel(req.model)
    const p = req.prompt
    // text gets the model's BOS in front, as vLLM and llama.cpp add it (and `kvkit generate`); token ids are taken as given
    const bos = this.model.config.bosTokenId
    const encode = async (t: string) => (t === '' ? [] : [...(bos === null ? [] : [bos]), ...(await this.encode(t))])
    const text = typeof p === 'string' ? p : typeof p[0] === 'string' ? p[0] : ''
    if (text !== '') this.refuseBeyondContext([text], bos === null ? 0 : 1, 'prompt')
    const ids = typeof p === 'string' || typeof p[0] === 'string' ? await encode(text) : (p as number[])
    try {
      this.model.checkIds(ids, 'prompt')
    } catch (e) {
      throw new ApiError(400, (e as Error).message.replace('prompt: empty token list', 'prompt: the prompt is empty'), 'prompt')
    }
    return this.job(ids, req.max_tokens, 'max_tokens', 'prompt', req, false)
  }

  private job(
    ids: number[], asked: number | null | undefined, maxParam: string, promptParam: string,
    req: ChatRequest | CompletionRequest, tools: boolean, forcedTool?: string, documents?: DocumentPlan,
  ): Job {
    const ctx = this.model.config.maxPositions
    const n = ids.length
    if (n === 0) throw new ApiError(400, `${promptParam}: the prompt is empty`, promptParam)
    if (n >= ctx) throw contextExceeded(promptParam, ctx, `${n}`)
    if (asked != null && n + asked > ctx)
      throw new ApiError(400, `${maxParam}: this model's maximum context length is ${ctx} tokens; you requested ${n + asked} (${n} in the ${promptParam}, ${asked} in the completion)`, maxParam, 'context_length_exceeded')
    const maxTokens = asked ?? Math.min(this.defaultMaxTokens, ctx - n)
    const policy = req.kv_policy != null ? this.policyOf(req.kv_policy, 'kv_policy') : this.defaultPolicy !== undefined ? this.policyOf(this.defaultPolicy, 'policy') : null
    const spec = policy === null ? null : (req.kv_policy ?? this.defaultPolicy)!
    if (documents && spec !== null) {
      const param = req.kv_policy != null ? 'kv_policy' : 'documents'
      throw new ApiError(400, `${param}: documents are served on the full cache (CacheBlend, Graph-KV); the KV policy ${JSON.stringify(spec)} cannot hold them`, param)
    }
    // CacheBlend's and Graph-KV's contexts have 64-token pages of their own
    const assembled = (documents && (documents.targets.length > 0 || this.documents.blend !== null)) || (spec === null && this.edits)
    // a request on the full cache shares the prefix cache's pages (or, with edit reuse, may run on
    // KVShare's 64-token pages); a compressed one has pages of its own, 64 tokens unless its policy
    // asks for more (KIVI's and VidKV's key groups of 128)
    const page = spec === null && !assembled ? this.prefixCache.blockTokens : Math.max(policy?.needs.pageTokens ?? 64, this.prefixCache.blockTokens)
    const reservation = Math.ceil((n - 1 + maxTokens) / page) * page
    if (reservation > this.scheduler.capacityTokens) {
      const param = asked != null ? maxParam : promptParam
      throw new ApiError(400, `${param}: the request may grow to ${reservation} KV tokens; this server's KV budget leaves ${this.scheduler.capacityTokens} for running requests (--kv-budget)`, param, 'kv_budget_exceeded')
    }
    const stop = [...(typeof req.stop === 'string' ? [req.stop] : (req.stop ?? [])), ...this.template.stop]
    const options: GenerateOptions = {
      maxNewTokens: maxTokens,
      temperature: req.temperature ?? 1,
      topP: req.top_p ?? 1,
      topK: req.top_k ?? 0,
      seed: req.seed ?? Math.floor(Math.random() * 2 ** 31),
      stop,
    }
    const salt = req.cache_salt ?? ''
    if (policy === null) options.reuse = salt ? this.prefixCache.tenant(salt) : this.prefixCache
    else options.policy = policy
    return { ids, maxTokens, reservation, options, tools, forcedTool, salt, resumes: [], ...(req.program_id != null ? { program: req.program_id } : {}), ...(documents ? { documents } : {}) }
  }

  /**
   * Runs a job when the KV budget admits it, calling `onDelta` with its text and tool calls as they come.
   * Rejects with the signal's reason when it aborts (queued or running: its KV is freed either way).
   */
  run(job: Job, signal: AbortSignal, onDelta: (d: Delta) => void): Promise<Outcome> {
    // a tool's duration ends when its result arrives, not when the request is admitted
    const resume = this.pins.resumed(job.resumes)
    const p = this.runAdmitted(job, signal, onDelta, resume)
    this.active.add(p)
    const done = () => this.active.delete(p)
    p.then(done, done)
    return p
  }

  private async runAdmitted(job: Job, signal: AbortSignal, onDelta: (d: Delta) => void, resume: () => void): Promise<Outcome> {
    let kept: { tokens: number; release: () => void } | null = null
    try {
      const release = await this.scheduler.acquire(job.reservation, signal, this.scheduler.order === 'kvshare' ? this.expectedHitRate(job) : 0, job.program)
      this.stats.requests++
      try {
        let options: GenerateOptions = { ...job.options, signal }
        // documents run on CacheBlend's or Graph-KV's context (or, blending off, on the prefix cache)
        // a client gone while its documents are computed stops them there, not after every chunk
        const docs = job.documents ? await this.documents.context(job.documents, job.salt, signal) : undefined
        // an edit of an earlier prompt runs on its aligned KV; another prompt leaves its KV for later edits
        const onPrefixCache = !docs && !job.tools && options.reuse
        const edited = this.edits && onPrefixCache ? await this.edits.match(job.ids, job.salt) : undefined
        const assembled = docs?.ctx ?? edited
        if (assembled) options = { ...options, reuse: assembled }
        else if (this.edits && onPrefixCache) options = { ...options, reuse: this.edits.capturing(options.reuse!, job.salt) }
        // a request that may end in tool calls keeps its conversation's blocks held past its end, for ToolPins
        if (job.tools && options.reuse && !docs) options = { ...options, reuse: this.keeping(options.reuse, job.salt, (h) => (kept = h)) }
        let gen: ReturnType<LlamaModel['generate']>
        try {
          gen = this.model.generate(job.ids, options)
        } catch (e) {
          // refused before it opened the assembled context: free it
          assembled?.dispose()
          throw e
        }
        // the resuming session's blocks are held by this request now: its pin has done its work
        resume()
        const parser = job.tools ? new ToolCallStream(job.forcedTool) : null
        const calls: ToolCall[] = []
        const send = (content: string, parsed: ParsedToolCall[]) => {
          const toolCalls = parsed.map((c) => ({ id: `call_${crypto.randomUUID().replace(/-/g, '').slice(0, 24)}`, ...c }))
          calls.push(...toolCalls)
          if (content || toolCalls.length) onDelta({ ...(content ? { content } : {}), ...(toolCalls.length ? { toolCalls } : {}) })
        }
        for await (const tok of gen) {
          this.sampleKv()
          if (!parser) send(tok.text, [])
          else {
            const piece = parser.push(tok.text)
            send(piece.content, piece.calls)
          }
        }
        const r = await gen.result
        if (parser) {
          const piece = parser.end()
          send(piece.content, piece.calls)
        }
        this.sampleKv()
        const n = job.ids.length
        // KVShare's reused tokens: the context's tokens aligned to the earlier prompt (some recomputed);
        // CacheBlend's: the documents found in its store
        const cached = docs ? docs.cached : edited ? edited.report.reused : r.stats.cachedTokens
        // an assembled context's prefill covers only the question: no measure of prefill per token
        if (!docs && n - cached >= 32) {
          const rate = r.stats.prefillMs / (n - cached)
          this.prefillMsPerToken = this.prefillMsPerToken ? 0.8 * this.prefillMsPerToken + 0.2 * rate : rate
        }
        const context = n + r.ids.length
        const hold = kept as { tokens: number; release: () => void } | null
        if (calls.length && hold) {
          kept = null
          this.pins.paused(calls.map((c) => ({ id: c.id, tool: c.name })), hold, context, this.prefillMsPerToken * context)
        }
        return {
          finishReason: calls.length > 0 ? 'tool_calls' : FINISH[r.finishReason],
          usage: { prompt_tokens: n, completion_tokens: r.ids.length, total_tokens: n + r.ids.length, prompt_tokens_details: { cached_tokens: cached } },
        }
      } finally {
        release()
      }
    } finally {
      resume()
      ;(kept as { release: () => void } | null)?.release()
    }
  }

  /**
   * `reuse` whose handle, when the request ends well, hands `keep` a hold on the conversation's blocks
   * (prompt and answer) taken before the cache's end-of-request eviction can run. The prompt's blocks
   * are held across the close; the answer's are held as far as they survived it.
   */
  private keeping(reuse: KVReuse, salt: string, keep: (h: { tokens: number; release: () => void }) => void): KVReuse {
    return onReuseClose(reuse, (h, generated, ok) => {
      const prompt = this.prefixCache.hold(h.ids, salt)
      try {
        h.close(generated, ok)
        if (ok) keep(this.prefixCache.hold([...h.ids, ...generated], salt))
      } finally {
        prompt.release()
      }
    })
  }

  /** the share of a job's prompt expected from cache: the prefix cache's, or KVShare's (edit reuse) */
  private expectedHitRate(job: Job): number {
    if (!job.options.reuse) return 0
    if (job.documents && (job.documents.targets.length > 0 || this.documents.blend)) return this.documents.expected(job.documents, job.salt) / job.ids.length
    const found = this.edits && !job.tools ? this.edits.expected(job.ids, job.salt) : this.prefixCache.cachedPrefix(job.ids, job.salt)
    return found / job.ids.length
  }

  private sampleKv(): void {
    const s = this.prefixCache.store
    this.stats.peakKvBytes = Math.max(this.stats.peakKvBytes, s.liveBytes.wasm + s.pooledBytes)
  }

  /** refuses queued requests, waits for running ones (the caller aborts them first), frees the prefix cache, stops the tokenizer thread */
  async close(reason: unknown): Promise<void> {
    this.scheduler.rejectWaiting(reason)
    await Promise.allSettled([...this.active])
    this.pins.close()
    this.prefixCache.dispose()
    // not awaited: the worker is unref'd and holds nothing to flush, so close() returns as promptly as before
    void this.tokenizerThread?.close()
  }
}

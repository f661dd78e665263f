import { Template } from '@huggingface/jinja'
import { ApiError } from './errors.js'
import { ModelInputError, shownValue } from '../model/errors.js'

/**
 * ChatML with Hermes-style tools, for models whose tokenizer_config.json has no `chat_template` (the
 * bundled fixture has none). The message part is the template transformers used as its class default
 * (`default_chat_template`, ChatML, until v4.43); the tool part follows Qwen2.5's template: the tools'
 * JSON schemas in the system turn, calls as `<tool_call>{"name", "arguments"}</tool_call>` and results
 * as `<tool_response>` in a user turn, which is also what tool-calls.ts parses.
 */
export const CHATML_TEMPLATE = `{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}
{{- '# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}
{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'system' %}
{%- if not loop.first %}{{- raise_exception('a system message must come first') }}{%- endif %}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant\\n' }}{%- if message.content %}{{- message.content }}{%- endif %}
{%- if message.tool_calls %}{%- for tool_call in message.tool_calls %}
{%- if message.content or not loop.first %}{{- '\\n' }}{%- endif %}
{{- '<tool_call>\\n{"name": "' + tool_call.function.name + '", "arguments": ' + (tool_call.function.arguments | tojson) + '}\\n</tool_call>' }}
{%- endfor %}{%- endif %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- else %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}`

/** what ChatML ends a turn with: a stop string for models that never learned it as a token */
const CHATML_END = '<|im_end|>'

/** A message as the template sees it: text content, tool calls with their arguments parsed where they are JSON. */
export interface TemplateMessage {
  role: string
  content: string
  name?: string
  tool_call_id?: string
  tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: unknown } }[]
}

/** A tool as templates take it (OpenAI's `tools` entries: `{ type: 'function', function: { name, description, parameters } }`). */
export type TemplateTool = { type: 'function'; function: { name: string; description?: string; parameters?: unknown } }

/**
 * A model's chat template (Hugging Face's `chat_template` in tokenizer_config.json, a Jinja template),
 * rendered with `@huggingface/jinja`, the implementation transformers.js uses. A model without one gets
 * CHATML_TEMPLATE (`source: 'chatml-fallback'`), whose turn end `<|im_end|>` becomes a stop string.
 */
export class ChatTemplate {
  private readonly template: Template

  private constructor(
    readonly text: string,
    readonly source: 'tokenizer_config' | 'chatml-fallback',
    private readonly tokens: { bos_token: string; eos_token: string },
    /** stop strings the template implies (ChatML's turn end for the fallback) */
    readonly stop: readonly string[],
  ) {
    this.template = new Template(text)
  }

  /**
   * From a parsed tokenizer_config.json (or `{}`): its `chat_template` (a string, or Hugging Face's list
   * of named templates, of which 'default' is taken), else the ChatML fallback. Throws Error on a
   * template the Jinja parser rejects.
   */
  static fromTokenizerConfig(config: Record<string, unknown> | null | undefined): ChatTemplate {
    if (config !== null && config !== undefined && (typeof config !== 'object' || Array.isArray(config))) {
      throw new ModelInputError(`ChatTemplate.fromTokenizerConfig: config must be tokenizer_config.json's object, got ${shownValue(config)}`)
    }
    const c = config ?? {}
    const tokenText = (t: unknown) => (typeof t === 'string' ? t : t && typeof t === 'object' && typeof (t as { content?: unknown }).content === 'string' ? (t as { content: string }).content : '')
    const tokens = { bos_token: tokenText(c.bos_token), eos_token: tokenText(c.eos_token) }
    let text: unknown = c.chat_template
    if (Array.isArray(text)) text = (text.find((t) => t && t.name === 'default') as { template?: unknown } | undefined)?.template
    if (typeof text === 'string' && text.trim() !== '') {
      // a template that does not parse fails here, naming the config, not at the first chat as a Jinja SyntaxError
      try {
        return new ChatTemplate(text, 'tokenizer_config', tokens, [])
      } catch (e) {
        throw new ModelInputError(`ChatTemplate.fromTokenizerConfig: chat_template does not parse as Jinja: ${(e as Error).message}`)
      }
    }
    return new ChatTemplate(CHATML_TEMPLATE, 'chatml-fallback', tokens, [CHATML_END])
  }

  /**
   * The prompt text for `messages` (with the assistant turn opened: `add_generation_prompt`). A template
   * that refuses the conversation (its `raise_exception`, or an error evaluating it) is a 400 naming
   * `messages`.
   */
  render(messages: readonly TemplateMessage[], tools?: readonly TemplateTool[]): string {
    try {
      return this.template.render({ messages, tools: tools && tools.length ? tools : undefined, add_generation_prompt: true, ...this.tokens })
    } catch (e) {
      throw new ApiError(400, `the chat template cannot render these messages: ${(e as Error).message}`, 'messages')
    }
  }
}

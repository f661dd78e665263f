import OpenAI from 'openai'
import { describe, expect, it } from 'vitest'
import { ID, useServer } from './serve-helpers.js'
import { ToolCallStream, type ParsedToolCall } from '../src/serve/tool-calls.js'
import { ChatTemplate } from '../src/serve/chat-template.js'

/** the parser fed `pieces` one by one: all content joined, all calls */
function parse(pieces: string[], forced?: string): { content: string; calls: ParsedToolCall[] } {
  const s = new ToolCallStream(forced)
  let content = ''
  const calls: ParsedToolCall[] = []
  for (const p of [...pieces.map((x) => s.push(x)), s.end()]) {
    content += p.content
    calls.push(...p.calls)
  }
  return { content, calls }
}

describe('Hermes tool-call parsing', () => {
  // text x expected content and calls, worked by hand
  const CASES: [string, string, ParsedToolCall[], string?][] = [
    ['no call at all, a < and a <tool too', 'no call at all, a < and a <tool too', []],
    ['Let me look.<tool_call>\n{"name": "lookup", "arguments": {"key": "a", "n": 2}}\n</tool_call>', 'Let me look.', [{ name: 'lookup', arguments: '{"key":"a","n":2}' }]],
    ['<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"x": [1]}}</tool_call>', '\n', [{ name: 'a', arguments: '{}' }, { name: 'b', arguments: '{"x":[1]}' }]],
    // Llama 3.1 names the arguments "parameters"; a string of arguments stays as it is
    ['<tool_call>{"name": "f", "parameters": {"q": 1}}</tool_call>', '', [{ name: 'f', arguments: '{"q":1}' }]],
    ['<tool_call>{"name": "f", "arguments": "{\\"q\\": 1}"}</tool_call>', '', [{ name: 'f', arguments: '{"q": 1}' }]],
    // not a call: given back as text
    ['<tool_call>{"name": "f", "arguments": {</tool_call> done', '<tool_call>{"name": "f", "arguments": {</tool_call> done', []],
    ['<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>', []],
    // a model that stops before the closing tag
    ['ok <tool_call>\n{"name": "f", "arguments": {"a": 1}}\n', 'ok ', [{ name: 'f', arguments: '{"a":1}' }]],
    ['ok <tool_call>\n{"name": "f", "argu', 'ok <tool_call>\n{"name": "f", "argu', []],
    // a named tool_choice: the prompt opened the call, the text is its arguments and the wrapper's brace
    ['{"city": "Paris"}}\n</tool_call>', '', [{ name: 'get_weather', arguments: '{"city": "Paris"}' }], 'get_weather'],
    ['not json at all', '', [{ name: 'get_weather', arguments: 'not json at all' }], 'get_weather'],
  ]

  it.each(CASES)('%j, whole and split at every character, gives the same content and calls', (text, content, calls, forced) => {
    expect(parse([text], forced)).toEqual({ content, calls })
    expect(parse([...text], forced)).toEqual({ content, calls })
    for (let i = 1; i < text.length; i++) expect(parse([text.slice(0, i), text.slice(i)], forced)).toEqual({ content, calls })
  })

  it('holds back only what may begin a call', () => {
    const s = new ToolCallStream()
    expect(s.push('Hello <tool')).toEqual({ content: 'Hello ', calls: [] })
    expect(s.push('box>')).toEqual({ content: '<toolbox>', calls: [] })
  })
})

describe('the ChatML fallback template', () => {
  it('is chosen when tokenizer_config has no chat_template, and a given one is used as it is', () => {
    expect(ChatTemplate.fromTokenizerConfig({}).source).toBe('chatml-fallback')
    const own = ChatTemplate.fromTokenizerConfig({ chat_template: '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}', bos_token: '<s>' })
    expect(own.source).toBe('tokenizer_config')
    expect(own.render([{ role: 'user', content: 'hi' }])).toBe('<s>[user] hi\n')
    expect(own.stop).toEqual([])
    const listed = ChatTemplate.fromTokenizerConfig({ chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: 'D' }] })
    expect(listed.render([])).toBe('D')
  })
})

const served = useServer()

const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
// the prompt the fallback renders for these tools and this question, written out by hand (Qwen2.5's layout)
const TOOLS_PROMPT =
  '<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
  '{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}' +
  '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
  '<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n'

describe('kvkit serve: tool calls', () => {
  it('a tool_choice naming a function returns its call, arguments as the model wrote them, and a tool turn reuses the cache', async () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }]
    const opened = TOOLS_PROMPT + '<tool_call>\n{"name": "get_weather", "arguments": '
    const want = await served.model.generate(served.model.tokenizer.encode(opened), { maxNewTokens: 10, temperature: 0, stop: ['<|im_end|>'] }).result
    const body = want.text.split('</tool_call>')[0].trimEnd()
    const args = (body.endsWith('}') ? body.slice(0, -1) : body).trim()
    const stream = await served.client.chat.completions.create({ model: ID, messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 0, max_tokens: 10, stream: true })
    const calls: OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall[] = []
    let finish: string | null = null
    let content = ''
    for await (const c of stream) {
      calls.push(...(c.choices[0]?.delta?.tool_calls ?? []))
      content += c.choices[0]?.delta?.content ?? ''
      finish = c.choices[0]?.finish_reason ?? finish
    }
    expect(content).toBe('')
    expect(finish).toBe('tool_calls')
    expect(calls).toHaveLength(1)
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: args } })
    expect(calls[0].id).toMatch(/^call_/)
    // the client runs the tool and sends its result back: the next turn finds the first in the cache
    const next = await served.client.chat.completions.create({
      model: ID, temperature: 0, max_tokens: 8, tools,
      messages: [...messages, { role: 'assistant', content: null, tool_calls: [{ id: calls[0].id!, type: 'function', function: { name: 'get_weather', arguments: calls[0].function!.arguments! } }] }, { role: 'tool', tool_call_id: calls[0].id!, content: '{"temperature": 21}' }],
    })
    expect(next.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(Math.floor(served.model.tokenizer.encode(TOOLS_PROMPT).length / 16) * 16)
    expect(['stop', 'length', 'tool_calls']).toContain(next.choices[0].finish_reason)
  })

  it("tool_choice 'none' leaves the tools out of the prompt and parses nothing", async () => {
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }]
    const r = await served.client.chat.completions.create({ model: ID, messages, tools, tool_choice: 'none', temperature: 0, max_tokens: 6 })
    const want = await served.model.generate(served.model.tokenizer.encode('<|im_start|>user\nWhat is the weather in Paris?<|im_end|>\n<|im_start|>assistant\n'), { maxNewTokens: 6, temperature: 0, stop: ['<|im_end|>'] }).result
    expect(r.choices[0].message.content).toBe(want.text)
    expect(r.choices[0].message.tool_calls).toBeUndefined()
  })
})

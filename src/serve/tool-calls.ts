/** A function call the model made: its name and its arguments as JSON text (OpenAI's `function` of a tool call). */
export interface ParsedToolCall {
  name: string
  arguments: string
}

/** What a piece of generated text turned into: text for `content`, and the calls it completed. */
export interface ToolCallPiece {
  content: string
  calls: ParsedToolCall[]
}

const OPEN = '<tool_call>'
const CLOSE = '</tool_call>'

/** the length of the longest end of `text` that begins `marker` (text held back: it may be the marker's start) */
function partialMarker(text: string, marker: string): number {
  for (let k = Math.min(marker.length - 1, text.length); k > 0; k--) if (marker.startsWith(text.slice(text.length - k))) return k
  return 0
}

/** a call block's JSON: `{"name": ..., "arguments": {...}}` (Hermes, Qwen2.5) or `"parameters"` (Llama 3.1); null if it is not one */
export function parseToolCall(block: string): ParsedToolCall | null {
  let v: unknown
  try {
    v = JSON.parse(block)
  } catch {
    return null
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null
  const { name, arguments: args, parameters } = v as { name?: unknown; arguments?: unknown; parameters?: unknown }
  if (typeof name !== 'string' || name === '') return null
  const a = args ?? parameters ?? {}
  return { name, arguments: typeof a === 'string' ? a : JSON.stringify(a) }
}

/**
 * Splits streamed model text into content and tool calls in the Hermes format (what the ChatML
 * fallback template asks for and Qwen2.5/Hermes models write): `<tool_call>{json}</tool_call>` blocks.
 * Text that may be the start of a block is held until it is known not to be; a block whose JSON does not
 * parse is given back as content (vLLM's hermes parser does the same).
 *
 * `forced` is for a tool_choice naming a function: the prompt already ends in
 * `<tool_call>\n{"name": "NAME", "arguments": `, so the text up to `</tool_call>` (less the closing
 * brace of the wrapper) is that call's arguments, valid JSON or not (OpenAI's docs: arguments may not
 * be valid JSON; validate them).
 */
export class ToolCallStream {
  private held = ''
  private inCall = false
  private forcedName: string | null

  constructor(forced?: string) {
    this.forcedName = forced ?? null
    this.inCall = forced !== undefined
  }

  push(text: string): ToolCallPiece {
    this.held += text
    const out: ToolCallPiece = { content: '', calls: [] }
    for (;;) {
      if (this.inCall) {
        const end = this.held.indexOf(CLOSE)
        if (end < 0) return out
        this.closeCall(this.held.slice(0, end), out, true)
        this.held = this.held.slice(end + CLOSE.length)
        continue
      }
      const start = this.held.indexOf(OPEN)
      if (start < 0) {
        const keep = partialMarker(this.held, OPEN)
        out.content += this.held.slice(0, this.held.length - keep)
        this.held = this.held.slice(this.held.length - keep)
        return out
      }
      out.content += this.held.slice(0, start)
      this.held = this.held.slice(start + OPEN.length)
      this.inCall = true
    }
  }

  /** the end of the text: an unclosed block is parsed as it stands (a model may stop without the closing tag) */
  end(): ToolCallPiece {
    const out: ToolCallPiece = { content: '', calls: [] }
    if (this.inCall) this.closeCall(this.held, out, false)
    else out.content = this.held
    this.held = ''
    this.inCall = false
    return out
  }

  private closeCall(block: string, out: ToolCallPiece, closed: boolean): void {
    this.inCall = false
    if (this.forcedName !== null) {
      const body = block.trimEnd()
      out.calls.push({ name: this.forcedName, arguments: (body.endsWith('}') ? body.slice(0, -1) : body).trim() })
      this.forcedName = null
      return
    }
    const call = parseToolCall(block.trim())
    if (call) out.calls.push(call)
    else out.content += OPEN + block + (closed ? CLOSE : '')
  }
}

/** the assistant text that opens a call of `name`, for a tool_choice naming it (the model writes the arguments) */
export function forcedCallPrefix(name: string): string {
  return `${OPEN}\n{"name": ${JSON.stringify(name)}, "arguments": `
}

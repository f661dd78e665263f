/**
 * ChatTemplate.fromTokenizerConfig checks what it is given: a chat_template that does not parse as Jinja is
 * a ModelInputError naming chat_template (it was the Jinja library's own SyntaxError, or a 500 at the first
 * chat where the server was handed the template), and a config that is not an object (a string, an array)
 * is refused where it fell back to ChatML silently. A good template and a missing config still work.
 */
import { describe, expect, it } from 'vitest'
import { ModelInputError } from '../src/model/errors.js'
import { ChatTemplate } from '../src/serve/chat-template.js'

describe('ChatTemplate.fromTokenizerConfig', () => {
  it('refuses a chat_template that does not parse, naming it', () => {
    for (const bad of ['{% for m in messages %}{{ m.content }}', '{{ messages[0].content ', '{% if %}x{% endif %}']) {
      expect(() => ChatTemplate.fromTokenizerConfig({ chat_template: bad })).toThrow(ModelInputError)
      expect(() => ChatTemplate.fromTokenizerConfig({ chat_template: bad })).toThrow(/fromTokenizerConfig: chat_template does not parse as Jinja/)
    }
  })
  it('refuses a config that is not an object', () => {
    expect(() => ChatTemplate.fromTokenizerConfig('{"chat_template": "x"}' as never)).toThrow(/config must be tokenizer_config.json's object, got "\{/)
    expect(() => ChatTemplate.fromTokenizerConfig([] as never)).toThrow(ModelInputError)
  })
  it('still renders a good template, and falls back to ChatML without one', () => {
    const t = ChatTemplate.fromTokenizerConfig({ chat_template: '{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}', eos_token: '</s>' })
    expect(t.render([{ role: 'user', content: 'hi' }])).toBe('<user>hi')
    for (const c of [undefined, null, {}]) expect(ChatTemplate.fromTokenizerConfig(c).render([{ role: 'user', content: 'hi' }])).toContain('hi')
  })
})

// no `node:` imports: the playground (issue 20) builds its passkey prompts in the browser from these

/**
 * Haystack text, cleaned and split exactly as the fixture's generator (train.py) did, so that prompts
 * look like the ones the model was trained on.
 */

/** `\r` removed; a lone newline becomes a space; blank-line runs become one blank line; space runs one space */
export function cleanText(raw: string): string {
  return raw
    .replace(/\r/g, '')
    .replace(/(?<!\n)\n(?!\n)/g, ' ')
    .replace(/\n{2,}/g, '\n\n')
    .replace(/[ \t]+/g, ' ')
    .trim()
}

/** split just before a space or newline that follows `.`, `!`, `?`, `"` or a newline */
export function splitSentences(text: string): string[] {
  return text.split(/(?<=[.!?"\n])(?=[ \n])/).filter((s) => s.length > 0)
}

export interface Book {
  name: string
  sentences: string[]
}

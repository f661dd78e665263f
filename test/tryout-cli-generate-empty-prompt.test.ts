/**
 * `kvkit generate` with an empty prompt (--prompt "", a --prompt-file that is empty or only
 * whitespace) exits 2 naming it before the weights load. It generated 64 tokens from the BOS token
 * alone and exited 0, output that reads as an answer to a prompt never read (the server's
 * /v1/completions refuses an empty prompt: "prompt: the prompt is empty").
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'
const dir = mkdtempSync(join(tmpdir(), 'kvkit-empty-prompt-'))
const empty = join(dir, 'empty.txt')
const blank = join(dir, 'blank.txt')
writeFileSync(empty, '')
writeFileSync(blank, ' \n\n\t\n')

describe('kvkit generate with an empty prompt', () => {
  it.each([
    [['--prompt', ''], '--prompt is empty'],
    [['--prompt', '   '], '--prompt is empty'],
    [['--prompt-file', empty], `prompt file ${empty} is empty`],
    [['--prompt-file', blank], `prompt file ${blank} is empty`],
  ])('%j: exit 2 naming it, nothing generated', async (args, message) => {
    const r = await cli('generate', '--model', MODEL, '--backend', 'wasm', '--max-new-tokens', '4', ...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })
})

/**
 * A comma list on the command line with an empty item (`--task passkey,,vt`, a trailing comma) exits 2
 * naming the flag, the list and the empty item, before anything runs: the empty item was dropped and the
 * run went on with a smaller grid than the one typed.
 */
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const out = join(mkdtempSync(join(tmpdir(), 'kvkit-list-')), 'prompts.jsonl')

const base = ['--model', 'models/fixture-14m', '--policy', 'full', '--samples', '1', '--backend', 'wasm', '--workers', '1']

describe('an empty item in a comma list is refused by name', () => {
  it.each([
    [['eval', ...base, '--task', 'passkey,,vt', '--length', '128'], 'kvkit: --task "passkey,,vt": item 2 of 3 is empty\n'],
    [['eval', ...base, '--task', 'passkey,', '--length', '128'], 'kvkit: --task "passkey,": item 2 of 2 is empty\n'],
    [['eval', ...base, '--task', 'passkey', '--length', '128, ,256'], 'kvkit: --length "128, ,256": item 2 of 3 is empty\n'],
    [['prompts', '--model', 'models/fixture-14m', '--task', ',passkey', '--length', '128', '--samples', '1', '--out', out], 'kvkit: --task ",passkey": item 1 of 2 is empty\n'],
  ])('%j: exit 2, the empty item named, nothing run', async (args, message) => {
    const r = await cli(...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(message)
    expect(r.stdout).toBe('')
    expect(existsSync(out)).toBe(false)
  })

  it('a list of nothing but commas is still "empty"', async () => {
    const r = await cli('eval', ...base, '--task', ',,', '--length', '128')
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('kvkit: --task is empty\n')
  })
})

/**
 * `kvkit prompts --samples 0` names the option as eval does ("--samples must be at least 1, got 0",
 * exit 2). It passed the CLI's check and was refused by the library in its own words ("samples must be a
 * positive integer, got 0"), without the option's dashes.
 */
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('kvkit prompts --samples 0', () => {
  it('exit 2 naming --samples, nothing written', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kvkit-prompts-zero-')), 'x.jsonl')
    const r = await cli('prompts', '--model', 'models/fixture-14m', '--task', 'passkey', '--length', '512', '--samples', '0', '--out', out)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('kvkit: --samples must be at least 1, got 0\n')
    expect(r.stdout).toBe('')
    expect(existsSync(out)).toBe(false)
  })
})

/**
 * `kvkit eval --report PATH` where PATH is a regular file: exit 2 saying it is not a folder, and the file
 * is left as it was. The message was mkdir's "EEXIST: file already exists, mkdir 'PATH'", which reads as
 * if the folder were there.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('kvkit eval --report over a file', () => {
  it('exit 2: it exists and is not a folder; the file untouched', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'kvkit-report-file-')), 'notes.txt')
    writeFileSync(file, 'my notes\n')
    const r = await cli('eval', '--model', 'models/fixture-14m', '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--backend', 'wasm', '--report', file)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: --report ${file} cannot be written: it exists and is not a folder\n`)
    expect(readFileSync(file, 'utf8')).toBe('my notes\n')
  })
})

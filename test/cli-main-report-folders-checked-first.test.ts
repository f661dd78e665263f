/**
 * `kvkit main` (npm start) writes two reports, report/ and report/question-after/; both folders are made
 * and checked before the first loop runs: a question-after path that is a file used to fail only after
 * the first loop's minutes of generation.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { packageRoot } from '../src/eval/paths.js'

describe('kvkit main', () => {
  it('refuses a report/question-after that cannot be a folder before running anything', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'kvkit-main-'))
    try {
      mkdirSync(join(cwd, 'report'))
      writeFileSync(join(cwd, 'report', 'question-after'), 'not a folder')
      const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'kvkit.js'), 'main', '--backend', 'wasm'], { cwd, encoding: 'utf8', timeout: 120_000 })
      expect(r.status).toBe(2)
      expect(r.stderr).toContain(join(cwd, 'report', 'question-after'))
      expect(r.stderr).toContain('it exists and is not a folder')
      // no generation ran: neither the progress lines nor a table
      expect(r.stderr).not.toMatch(/\[\d+\/\d+\]/)
      expect(r.stdout).toBe('')
    } finally {
      rmSync(cwd, { recursive: true, force: true })
    }
  })
})

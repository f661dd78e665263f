/**
 * The eval's writers (writeJson, writeReport, writePromptsFile) fail with an EvalOutputError naming the
 * path and why, not Node's bare "EISDIR: illegal operation on a directory" or "ENOTDIR"/"EEXIST", and a
 * failed write leaves what the user had as it was.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { writeJson } from '../src/eval/json.js'
import { writeReport } from '../src/eval/report.js'
import { writePromptsFile } from '../src/eval/prompts-file.js'
import { EvalOutputError } from '../src/eval/output.js'

const scratch = () => mkdtempSync(join(tmpdir(), 'kvkit-writers-'))

describe('eval writers name the path they cannot write', () => {
  it('writeJson to a folder: EvalOutputError naming it as a folder, the folder untouched', () => {
    const dir = scratch()
    writeFileSync(join(dir, 'keep.txt'), 'mine\n')
    expect(() => writeJson(dir, [])).toThrow(EvalOutputError)
    expect(() => writeJson(dir, [])).toThrow(`cannot write the results JSON ${dir}: it is a folder (EISDIR)`)
    expect(readdirSync(dir)).toEqual(['keep.txt'])
  })

  it('writeJson below a file: EvalOutputError naming the path, the file untouched', () => {
    const file = join(scratch(), 'notes.txt')
    writeFileSync(file, 'my notes\n')
    const out = join(file, 'results.json')
    expect(() => writeJson(out, [])).toThrow(EvalOutputError)
    expect(() => writeJson(out, [])).toThrow(`cannot write the results JSON ${out}: a part of its path is a file, not a folder`)
    expect(readFileSync(file, 'utf8')).toBe('my notes\n')
  })

  it('writeReport over a file: EvalOutputError saying it is not a folder, the file untouched', () => {
    const file = join(scratch(), 'notes.txt')
    writeFileSync(file, 'my notes\n')
    expect(() => writeReport(file, [])).toThrow(EvalOutputError)
    expect(() => writeReport(file, [])).toThrow(`cannot write the report to ${file}: it exists and is not a folder`)
    expect(readFileSync(file, 'utf8')).toBe('my notes\n')
  })

  it('writeReport where index.html is a folder: EvalOutputError naming index.html', () => {
    const dir = scratch()
    mkdirSync(join(dir, 'index.html'))
    expect(() => writeReport(dir, [])).toThrow(`cannot write the report ${join(dir, 'index.html')}: it is a folder (EISDIR)`)
  })

  it('writePromptsFile to a folder and an empty path: EvalOutputError naming the value', () => {
    const dir = scratch()
    expect(() => writePromptsFile(dir, [])).toThrow(`cannot write the prompts file ${dir}: it is a folder (EISDIR)`)
    expect(() => writePromptsFile('', [])).toThrow(new EvalOutputError('the prompts file path must be a non-empty string, got ""'))
  })

  it('a successful write replaces the file whole and leaves no temporary file beside it', () => {
    const dir = scratch()
    const file = join(dir, 'results.json')
    writeFileSync(file, 'old\n')
    writeJson(file, [])
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ results: [] })
    expect(readdirSync(dir)).toEqual(['results.json'])
  })
})

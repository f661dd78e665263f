/**
 * `kvkit main` with a bad argument (--workers 0, an unknown backend) prints only the one line naming it
 * and exits 2, as every other command does. Its banner ("kvkit main: 9 policy settings x ...") came
 * first, announcing a run that never started.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('kvkit main with a bad argument', () => {
  it.each([
    [['--workers', '0'], '--workers must be at least 1, got 0'],
    [['--workers', 'two'], '--workers must be a non-negative integer, got "two"'],
    [['--backend', 'cuda'], 'unknown backend "cuda" (backends: wasm, webgpu, auto, reference)'],
  ])('%j: exit 2, the one line naming it', async (args, message) => {
    const r = await cli('main', ...args)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })
})

/**
 * A kernel thread count past loadModel's limit (256) is refused when the evaluation is planned, before
 * any worker loads a model: `kvkit eval --threads 1000` exits 2 naming the value, and a --json file the
 * user already has is left as it was. It failed with exit 1 from inside a worker's loadModel, after the
 * run had begun and written an empty results file over the user's.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'
import { EvalArgumentError, planEvaluation } from '../src/eval/runner.js'

const MODEL = 'models/fixture-14m'

describe('eval threads past loadModel limit', () => {
  it('kvkit eval --threads 1000: exit 2 naming it, the --json file untouched', async () => {
    const json = join(mkdtempSync(join(tmpdir(), 'kvkit-threads-')), 'results.json')
    writeFileSync(json, '{"mine": true}\n')
    const r = await cli('eval', '--model', MODEL, '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--workers', '1', '--backend', 'wasm', '--threads', '1000', '--json', json)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('kvkit: threads must be an integer in [1, 256], got 1000\n')
    expect(readFileSync(json, 'utf8')).toBe('{"mine": true}\n')
  })

  it.each([0, 257, 1.5, Number.NaN])('planEvaluation refuses threads %s; 256 passes', (threads) => {
    const opts = { model: MODEL, policies: ['full'], tasks: ['passkey' as const], lengths: [512], samples: 1 }
    expect(() => planEvaluation({ ...opts, threads })).toThrow(EvalArgumentError)
    expect(() => planEvaluation({ ...opts, threads })).toThrow(/threads must be an integer in \[1, 256\]/)
    expect(() => planEvaluation({ ...opts, threads: 256 })).not.toThrow()
  })
})

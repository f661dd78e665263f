/**
 * `kvkit eval --json FILE` over a file the user already has: a run that fails before its first cell
 * finishes (here the model's weight shards are missing, found only when a worker loads them) leaves the
 * file as it was. The file was overwritten with empty results at the start, so the failed run lost the
 * user's earlier results. A new file still appears empty at once (test/cli-bad-arguments-exit-2.test.ts).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('an existing --json file and a run that fails', () => {
  it('is left byte for byte as it was', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-json-kept-'))
    const model = join(dir, 'model')
    mkdirSync(model)
    // the fixture's config and tokenizer, without its weights: planning passes, loading fails
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json'])
      copyFileSync(join('models/fixture-14m', f), join(model, f))
    const json = join(dir, 'results.json')
    const mine = '{ "results": [{ "policy": "full", "accuracy": 0.9 }] }\n'
    writeFileSync(json, mine)
    const r = await cli('eval', '--model', model, '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--workers', '1', '--backend', 'wasm', '--json', json)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/model-00001-of-00002\.safetensors/)
    expect(readFileSync(json, 'utf8')).toBe(mine)
  })
})

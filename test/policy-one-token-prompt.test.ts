/**
 * Kind 2 of issue 8: a one-token prompt (the CLI's `--prompt ""` is [bos]) prefills nothing; every
 * policy still has its prefill-end callback run, so decode-time state exists, and generation runs to
 * maxNewTokens. The first new token depends only on the prompt token, so it equals the full cache's.
 * Grid: every registered policy's specs (decode-time variants included) x maxNewTokens {1, 4}, on a
 * tiny random model; the examples (keyformer, h2o:every=1, trimkv) on the fixture through the
 * library and keyformer through the CLI.
 */
import { spawnSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { createPolicy } from '../src/policies/registry.js'
import { randomGatesFile, randomScoresFile, specsPerPolicy } from './policy-grid-helpers.js'
import { makeTinyModel } from './tiny-model.js'

let tiny: LlamaModel
let fixture: LlamaModel
beforeAll(async () => {
  tiny = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
  fixture = await loadModel('models/fixture-14m', { backend: 'wasm' })
})
afterAll(() => {
  tiny?.dispose()
  fixture?.dispose()
})

describe('one-token prompts', () => {
  it('every registered policy x maxNewTokens {1, 4}: runs to the end, first token as with the full cache', async () => {
    const specs = [...specsPerPolicy(randomGatesFile(tiny.config), randomScoresFile(tiny.config)).values()].flat()
    let cases = 0
    for (const maxNewTokens of [1, 4]) {
      const full = await tiny.generate([7], { maxNewTokens }).result
      for (const spec of specs) {
        const r = await tiny.generate([7], { maxNewTokens, policy: createPolicy(spec, tiny.config)! }).result
        expect(r.ids.length, spec).toBe(maxNewTokens)
        expect(r.finishReason, spec).toBe('length')
        expect(r.ids[0], spec).toBe(full.ids[0])
        cases++
      }
    }
    expect(cases).toBe(2 * specs.length)
  })

  it('the issue\'s examples on the fixture: keyformer, h2o:every=1 and trimkv on [bos]', async () => {
    const bos = fixture.config.bosTokenId!
    const full = await fixture.generate([bos], { maxNewTokens: 3 }).result
    for (const spec of ['keyformer', 'h2o:every=1', `trimkv:gatesFile=${randomGatesFile(fixture.config)},every=1`]) {
      const r = await fixture.generate([bos], { maxNewTokens: 3, policy: createPolicy(spec, fixture.config)! }).result
      expect(r.ids.length, spec).toBe(3)
      expect(r.ids[0], spec).toBe(full.ids[0])
    }
  })

  it('kvkit generate --prompt "" --policy keyformer generates its tokens and exits 0', () => {
    const p = spawnSync(process.execPath, ['bin/kvkit.js', 'generate', '--model', 'models/fixture-14m', '--prompt', '', '--policy', 'keyformer', '--max-new-tokens', '3', '--backend', 'wasm'], { encoding: 'utf8' })
    expect(p.stderr).not.toMatch(/TypeError/)
    expect(p.status).toBe(0)
    expect(p.stderr).toMatch(/1 prompt tokens, 3 new/)
  })
})

/**
 * A masked diffusion LM (Dream) is decoded by iterative unmasking only. Every causal path beyond
 * generate() and prefillPrompt() must refuse it too, before any work, instead of running the
 * bidirectional weights causally (Sequence) or with a leak (perplexity over the bidirectional logits,
 * where each position sees the token it predicts), or starting a server whose every request fails:
 * DecodingModeError from the library, exit 2 from the command before the weights load. The command's
 * --kv-dtype float16 is refused for a diffusion model (its decode keeps float32 K/V; the flag would be
 * ignored), and eval refuses the Elastic-Cache window and step counts diffusionGenerate would refuse in
 * every sample before any model loads.
 */
import { rmSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { DecodingModeError } from '../src/index.js'
import type { LlamaModel } from '../src/model/model.js'
import { Sequence } from '../src/reuse/sequence.js'
import { perplexity } from '../src/eval/perplexity.js'
import { planEvaluation } from '../src/eval/runner.js'
import { serve } from '../src/serve/http.js'
import { runCli } from '../src/cli.js'
import { makeTinyDream } from './diffusion-helpers.js'

const DREAM = 'models/diffusion-14m'
const { path: tiny } = makeTinyDream(7)
afterAll(() => rmSync(tiny, { recursive: true, force: true }))

async function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  let stderr = ''
  const err = process.stderr.write, out = process.stdout.write
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write
  process.stdout.write = (() => true) as typeof process.stdout.write
  try {
    return { code: await runCli(args), stderr }
  } finally {
    process.stderr.write = err
    process.stdout.write = out
  }
}

describe('the library refuses causal paths on a diffusion model', () => {
  let model: LlamaModel
  beforeAll(async () => { model = await loadModel(tiny, { backend: 'wasm', threads: 1 }) })
  afterAll(() => model.dispose())

  it('model.prefill and a Sequence fed through it', () => {
    const cache = model.newCache()
    try {
      expect(() => model.prefill([1, 2, 3], cache)).toThrow(DecodingModeError)
      expect(cache.length(0, 0)).toBe(0)
    } finally {
      cache.dispose()
    }
    const seq = Sequence.create(model)
    try {
      expect(() => seq.feed([1, 2, 3])).toThrow(DecodingModeError)
      expect(() => seq.feed([1, 2, 3])).toThrow(/prefill: DreamModel is a masked diffusion LM/)
    } finally {
      seq.dispose()
    }
  })
  it('perplexity', () => {
    const books = [{ name: 'b', sentences: Array.from({ length: 100 }, (_, i) => ` Sentence ${i}.`) }]
    expect(() => perplexity(model, { books, length: 32, samples: 1, seed: 1, bosId: 0 })).toThrow(DecodingModeError)
  })
  it('serve, before it listens', async () => {
    await expect(serve(model, { port: 0 })).rejects.toThrow(DecodingModeError)
  })
})

describe('the command refuses them with exit 2 before the weights load', () => {
  it('kvkit serve and kvkit perplexity', async () => {
    const s = await cli('serve', '--model', DREAM, '--port', '0')
    expect(s.code).toBe(2)
    expect(s.stderr).toMatch(/masked diffusion LM \(Dream\): kvkit serve generates causally/)
    const p = await cli('perplexity', '--model', DREAM, '--length', '256', '--samples', '1')
    expect(p.code).toBe(2)
    expect(p.stderr).toMatch(/next-token perplexity needs a causal model/)
  })
  it('--kv-dtype float16 for generate and eval', async () => {
    const g = await cli('generate', '--model', DREAM, '--prompt', 'hello', '--max-new-tokens', '8', '--kv-dtype', 'float16')
    expect(g.code).toBe(2)
    expect(g.stderr).toMatch(/--kv-dtype float16: a diffusion model's decode keeps float32 K\/V/)
    expect(() => planEvaluation({ model: DREAM, policies: ['full'], tasks: ['passkey'], lengths: [256], samples: 1, kvDtype: 'float16' }))
      .toThrow(/kvDtype "float16": a diffusion model's decode keeps float32 K\/V/)
  })
})

describe('eval refuses what every diffusion sample would refuse, before any model loads', () => {
  const plan = (policies: string[], diffusion: Record<string, number>) =>
    () => planEvaluation({ model: DREAM, policies, tasks: ['passkey'], lengths: [256], samples: 1, diffusion })
  it('an Elastic-Cache window shorter than the block', () => {
    expect(plan(['elastic-cache:windowLength=4'], {})).toThrow('elastic-cache:windowLength=4: windowLength 4 is shorter than blockLength 8')
    expect(plan(['elastic-cache:windowLength=8'], { blockLength: 16 })).toThrow('windowLength 8 is shorter than blockLength 16')
    expect(plan(['elastic-cache:windowLength=16'], { blockLength: 16 })).not.toThrow()
  })
  it('steps that do not split over the blocks of a given genLength', () => {
    expect(plan(['full'], { genLength: 16, steps: 3 })).toThrow('diffusion steps 3 is not a multiple of the number of blocks 2 (genLength 16 / blockLength 8)')
    expect(plan(['full'], { genLength: 16, steps: 32 })).toThrow('diffusion steps 32 give 16 steps per block, more than blockLength 8')
    expect(plan(['full'], { genLength: 16, steps: 4 })).not.toThrow()
  })
  it('the command exits 2 for them', async () => {
    const r = await cli('eval', '--model', DREAM, '--policy', 'full', '--task', 'passkey', '--length', '256', '--samples', '1', '--workers', '1', '--gen-length', '16', '--steps', '3')
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/diffusion steps 3 is not a multiple/)
  })
})

/**
 * kvkit/eval called from code with arguments of the wrong form gets EvalArgumentError naming them, before
 * any work:
 * - `evaluate({ tasks: 'passkey' })` said `unknown task "p"` (the string read letter by letter);
 *   `policies: 'full'` and no options at all threw TypeErrors; `lengths: ['512']` said "got 512";
 * - `perplexity(model, { length: 1 })` returned NaN (no prediction to average), `samples: 0` too, and
 *   missing books threw a TypeError from inside the sampler.
 */
import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError, type EvalOptions } from '../src/eval/runner.js'
import { perplexity } from '../src/eval/perplexity.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { loadModel } from '../src/node/load.js'
import { makeTinyModel } from './tiny-model.js'

const base = { model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [512], samples: 1 }

describe('evaluate options of the wrong form', () => {
  it('strings for lists, no options, a length as a string: EvalArgumentError naming them', () => {
    const cases: [unknown, string][] = [
      [{ ...base, tasks: 'passkey' }, 'tasks must be a list, got "passkey"'],
      [{ ...base, policies: 'full' }, 'policies must be a list, got "full"'],
      [{ ...base, lengths: 512 }, 'lengths must be a list, got 512'],
      [{ ...base, lengths: ['512'] }, 'length must be an integer of at least 128 tokens, got "512"'],
      [{ ...base, tasks: undefined }, 'no task given'],
      [{ ...base, policies: undefined }, 'no policy given'],
      [undefined, 'evaluate needs an options object, got undefined'],
    ]
    for (const [opts, msg] of cases) {
      const plan = () => planEvaluation(opts as EvalOptions)
      expect(plan, msg).toThrow(EvalArgumentError)
      expect(plan, msg).toThrow(msg)
    }
  })
})

describe('perplexity options', () => {
  it('a length under 2, no samples, bad seed or BOS, no books: EvalArgumentError; good ones give a finite value', async () => {
    const model = await loadModel(makeTinyModel(), { backend: 'wasm' })
    const books = [{ name: 'tiny', sentences: ['The cat sat.', ' It was a sunny day.', ' The birds sang.'] }]
    const good = { books, length: 8, samples: 2, seed: 1, bosId: 0 }
    const cases: [Record<string, unknown>, string][] = [
      [{ length: 1 }, 'length must be an integer of at least 2 tokens, got 1'],
      [{ length: 2.5 }, 'length must be an integer of at least 2 tokens, got 2.5'],
      [{ length: 1e6 }, 'length 1000000 is beyond what the model supports'],
      [{ samples: 0 }, 'samples must be a positive integer, got 0'],
      [{ seed: NaN }, 'seed must be an integer, got NaN'],
      [{ bosId: 99999 }, 'bosId must be a token id in [0, 4096), got 99999'],
      [{ books: [] }, 'books must be a non-empty list of books with sentences'],
      [{ books: undefined }, 'books must be a non-empty list of books with sentences'],
      [{ books: [{ name: 'empty', sentences: [] }] }, 'books must be a non-empty list of books with sentences'],
    ]
    for (const [o, msg] of cases) {
      const run = () => perplexity(model, { ...good, ...o } as typeof good)
      expect(run, msg).toThrow(EvalArgumentError)
      expect(run, msg).toThrow(`perplexity: ${msg}`)
    }
    expect(Number.isFinite(await perplexity(model, good))).toBe(true)
    model.dispose()
  })
})

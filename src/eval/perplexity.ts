import { DecodingModeError } from '../model/errors.js'
import { EvalArgumentError, showValue } from './runner.js'
import type { Model } from '../model/types.js'
import { Rng } from './prng.js'
import type { Book } from './text.js'

/**
 * Perplexity on held-out text, as train.py measures it: BOS then consecutive sentences from a random
 * place of a random book, cut to `length` tokens; exp of the mean next-token cross-entropy over the
 * length - 1 predictions of every sample. Full cache (it reads the logits of the whole sequence).
 */
export interface PerplexityOptions {
  books: readonly Book[]
  length: number
  samples: number
  seed: number
  bosId: number
  /** aborts between samples and between each sample's prefill chunks: the promise rejects with its reason */
  signal?: AbortSignal
}

export function heldOutText(model: Model, opts: Omit<PerplexityOptions, 'samples'>, index: number): number[] {
  const rng = new Rng(`${opts.seed}/ppl/${opts.length}/${index}`)
  let b = rng.randrange(0, opts.books.length)
  let i = rng.randrange(0, Math.max(1, opts.books[b].sentences.length - 50))
  const ids = [opts.bosId]
  while (ids.length < opts.length) {
    if (i >= opts.books[b].sentences.length) {
      b = rng.randrange(0, opts.books.length)
      i = 0
    }
    ids.push(...model.tokenizer.encode(opts.books[b].sentences[i++]))
  }
  return ids.slice(0, opts.length)
}

/**
 * EvalArgumentError naming the first bad option: a length under 2 or no samples would divide by no
 * predictions (NaN); no books, or a BOS outside the vocabulary, would fail deep inside.
 */
function checkPerplexityOptions(model: Model, opts: PerplexityOptions): void {
  const fail = (msg: string): never => { throw new EvalArgumentError(`perplexity: ${msg}`) }
  if (typeof opts !== 'object' || opts === null) fail(`needs an options object, got ${showValue(opts)}`)
  const { length, samples, seed, bosId, books } = opts
  const max = model.config.maxPositions
  if (!(Number.isInteger(length) && length >= 2)) fail(`length must be an integer of at least 2 tokens, got ${showValue(length)}`)
  if (length > max) fail(`length ${length} is beyond what the model supports (max_position_embeddings ${max})`)
  if (!(Number.isInteger(samples) && samples >= 1)) fail(`samples must be a positive integer, got ${showValue(samples)}`)
  if (!Number.isInteger(seed)) fail(`seed must be an integer, got ${showValue(seed)}`)
  if (!(Number.isInteger(bosId) && bosId >= 0 && bosId < model.config.vocab)) fail(`bosId must be a token id in [0, ${model.config.vocab}), got ${showValue(bosId)}`)
  if (!Array.isArray(books) || books.length === 0 || books.some((b) => !(b?.sentences?.length > 0)))
    fail('books must be a non-empty list of books with sentences (loadBooks)')
  if (opts.signal !== undefined && !(opts.signal instanceof AbortSignal)) fail(`signal must be an AbortSignal, got ${showValue(opts.signal)}`)
}

/** natural-log cross-entropy summed over positions 0..n-2 predicting ids[1..n-1] */
export function crossEntropySum(logits: Float32Array, ids: readonly number[], vocab: number): number {
  if (logits.length !== ids.length * vocab) throw new Error(`logits hold ${logits.length} floats, expected ${ids.length} x ${vocab}`)
  let total = 0
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = logits.subarray(t * vocab, (t + 1) * vocab)
    let max = -Infinity
    for (let v = 0; v < vocab; v++) if (row[v] > max) max = row[v]
    let sum = 0
    for (let v = 0; v < vocab; v++) sum += Math.exp(row[v] - max)
    total += max + Math.log(sum) - row[ids[t + 1]]
  }
  return total
}

/**
 * The perplexity (see PerplexityOptions), a promise: the samples run chunk by chunk on later turns of
 * the event loop, so `signal` stops a long run between chunks (rejecting with its reason). Bad options
 * throw at the call (EvalArgumentError, DecodingModeError for a diffusion LM), before any work.
 */
export function perplexity(model: Model, opts: PerplexityOptions): Promise<number> {
  // a bidirectional forward sees the token each position predicts: its "perplexity" would be a leak
  if (model.config.diffusion)
    throw new DecodingModeError(`perplexity: ${model.config.architecture} is a masked diffusion LM; next-token perplexity needs a causal model`)
  checkPerplexityOptions(model, opts)
  return perplexityOf(model, opts)
}

async function perplexityOf(model: Model, opts: PerplexityOptions): Promise<number> {
  let total = 0
  let count = 0
  for (let s = 0; s < opts.samples; s++) {
    const ids = heldOutText(model, opts, s)
    total += crossEntropySum(await model.logits(ids, { signal: opts.signal }), ids, model.config.vocab)
    count += ids.length - 1
  }
  return Math.exp(total / count)
}

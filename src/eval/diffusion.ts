import type { LlamaModel } from '../model/model.js'
import { elasticCache, type ElasticCacheConfig } from '../model/diffusion/options.js'
import { parseSinglePolicySpec } from '../policies/spec.js'
import { PolicySpecSyntaxError } from '../policies/errors.js'
import { ModelInputError, shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'
import type { PromptSample } from './prompts-file.js'
import type { SampleOutcome } from './results.js'
import { rulerScore, strictCorrect } from './score.js'

/**
 * How the harness decodes a masked diffusion LM (Dream): the eval's "policies" are then the decoding's
 * K/V reuse, `full` (every token recomputed every step) or `elastic-cache[:gamma=..,windowLength=..,
 * trackNum=..,blockCaching=..,refreshFrom=next-layer]` (Elastic-Cache, arXiv 2510.14973), compared on the same prompts.
 */
export interface DiffusionDecoding {
  /** answer positions; default: the sample's answer + 3 tokens (as the causal eval's maxNewTokens), rounded up to blockLength */
  genLength?: number
  /** default 8 */
  blockLength?: number
  /** denoising steps in all; default genLength (one token a step, LLaDA's most accurate setting) */
  steps?: number
  /** stop after the first block holding an end-of-sequence token (default true: the causal eval stops at EOS too) */
  stopAtEos?: boolean
}

export const DIFFUSION_BLOCK_LENGTH = 8

/** What a diffusion sample adds to its outcome: the decode's time and how much of the forward it computed. */
export interface DiffusionOutcome {
  genLength: number
  steps: number
  decodeMs: number
  /** token rows computed / what full recomputation computes for the same steps */
  computeRatio: number
  /** steps that recomputed some layer over every token */
  refreshSteps: number
}

/**
 * The decoding cache a spec names: `full` (or `none`), or `elastic-cache` with options.
 * @throws EvalArgumentError naming the spec and its bad part (the syntax, the name, an option), whatever
 *   layer found it: the policies' parser and elasticCache throw the root's classes, which kvkit/eval does not export
 */
export function diffusionCacheFromSpec(spec: string): 'none' | ElasticCacheConfig {
  const usage = `a diffusion model decodes with 'full' (recompute every step) or 'elastic-cache[:gamma=0.9,windowLength=..,trackNum=1,blockCaching=true]'`
  if (typeof spec !== 'string') throw new EvalArgumentError(`${usage}; the spec must be a string, got ${shownValue(spec)}`)
  if (spec === 'full' || spec === 'none') return 'none'
  try {
    // the policies' spec syntax (NAME:key=value,...), parsed by the policies' parser
    const { name, options } = parseSinglePolicySpec(spec)
    if (name !== 'elastic-cache') throw new EvalArgumentError(`${usage}, got ${JSON.stringify(spec)}`)
    return elasticCache(options)
  } catch (e) {
    if (e instanceof EvalArgumentError) throw e
    if (e instanceof PolicySpecSyntaxError || e instanceof ModelInputError) throw new EvalArgumentError(`diffusion cache ${JSON.stringify(spec)}: ${e.message}`)
    throw e
  }
}

/** the sample's decode options: genLength from the answer unless given */
function decodeOptions(d: DiffusionDecoding, sample: PromptSample): { genLength: number; blockLength: number; steps: number; stopAtEos: boolean } {
  const blockLength = d.blockLength ?? DIFFUSION_BLOCK_LENGTH
  const genLength = d.genLength ?? Math.ceil((sample.answer_ids.length + 3) / blockLength) * blockLength
  return { genLength, blockLength, steps: d.steps ?? genLength, stopAtEos: d.stopAtEos ?? true }
}

/** One sample decoded by iterative unmasking with the cache `spec` names, scored as the causal eval scores; `signal` aborts between decoding steps. */
export async function diffusionOutcome(model: LlamaModel, spec: string, d: DiffusionDecoding, sample: PromptSample, where: Pick<SampleOutcome, 'task' | 'length' | 'index' | 'question'>, signal?: AbortSignal): Promise<SampleOutcome> {
  const o = decodeOptions(d, sample)
  const r = await model.diffusionGenerate(sample.prompt_ids, { ...o, cache: diffusionCacheFromSpec(spec), signal })
  const rc = r.stats.recompute
  return {
    policy: spec,
    ...where,
    correct: strictCorrect(r.text, sample.answer),
    score: rulerScore(r.text, sample.expected),
    continuation: r.text,
    kvBytes: r.stats.kvBytes,
    kvBytesFull: r.stats.kvBytes,
    prefillMs: 0,
    compressMs: 0,
    decodeMsPerToken: r.stats.decodeMs / o.genLength,
    kernels: model.kernels,
    kvDtype: 'float32',
    newTokens: r.ids.length,
    diffusion: { genLength: o.genLength, steps: r.stats.steps, decodeMs: r.stats.decodeMs, computeRatio: rc.computeRatio, refreshSteps: rc.refreshSteps },
  }
}

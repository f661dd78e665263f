import type { DiffusionOutcome } from './diffusion.js'
import { shownValue } from '../model/errors.js'
import { EvalArgumentError } from './errors.js'

/**
 * Throws EvalArgumentError naming the first entry of `results` that is not an EvalResult's cell (a
 * string policy and task, a length): the report and the JSON read these of every entry, and a null list
 * or entry was "Cannot read properties of null (reading 'map')".
 */
export function checkResults(results: unknown, where: string): asserts results is readonly EvalResult[] {
  if (!Array.isArray(results)) throw new EvalArgumentError(`${where}: results must be a list of EvalResult (what evaluate returns), got ${shownValue(results)}`)
  results.forEach((r, i) => {
    const ok = typeof r === 'object' && r !== null && typeof r.policy === 'string' && typeof r.task === 'string' && Number.isInteger(r.length)
    if (!ok) throw new EvalArgumentError(`${where}: results[${i}] is not an EvalResult ({ policy, task, length, ... } as evaluate returns), got ${shownValue(r)}`)
  })
}

/** One cell of an evaluation: a policy on a task at a context length, averaged over its samples. */
export interface EvalResult {
  policy: string
  task: string
  length: number
  samples: number
  /** share of samples whose continuation starts with the answer (strict) */
  accuracy: number
  /** 95% Wilson score interval of the accuracy over the cell's samples: [low, high] */
  accuracyInterval: [number, number]
  /** RULER's score: mean share of expected values found in the continuation */
  score: number
  /** mean KV-cache bytes held at the end of generation (all tiers) */
  kvBytes: number
  /** mean bytes a full cache would hold for the same tokens */
  kvBytesFull: number
  prefillMs: number
  /** mean time of the policy's decisions at prefill end (KVzip: its reconstruction pass), within prefillMs */
  compressMs: number
  decodeMsPerToken: number
  /** the compute core(s) the cell's samples ran on (Model.kernels), comma-separated if they differ */
  kernels: string
  /** the KV cache's element type (EvalOptions.kvDtype), comma-separated if the samples differ */
  kvDtype: string
  /** the loop (EvalOptions.question): 'with' (the question compressed with its context) or 'after' */
  question: string
  /** mean tokens generated per sample */
  newTokens: number
  /** the policy's own counters (GenerateStats.policy: a selection's tier transfers, hit rates), mean per sample */
  policyStats?: Record<string, number>
  /** a diffusion model's cells: mean decode time (ms), share of the full forward computed, refresh steps */
  diffusion?: { decodeMs: number; computeRatio: number; refreshSteps: number }
}

/** What a single generation contributed to its cell. */
export interface SampleOutcome {
  policy: string
  task: string
  length: number
  index: number
  /** the loop: question compressed with the context, or prefilled after compression */
  question: 'with' | 'after'
  correct: boolean
  score: number
  continuation: string
  kvBytes: number
  kvBytesFull: number
  prefillMs: number
  compressMs: number
  decodeMsPerToken: number
  kernels: string
  kvDtype: string
  newTokens: number
  /** GenerateStats.policy of this generation, where the policy keeps counters */
  policyStats?: Record<string, number>
  /** a diffusion model's sample: the decode's time and recompute counts */
  diffusion?: DiffusionOutcome
}

/** the mean of each counter over the samples that report it; undefined when none does */
function meanCounters(xs: readonly SampleOutcome[]): Record<string, number> | undefined {
  const withStats = xs.filter((o) => o.policyStats)
  if (withStats.length === 0) return undefined
  const keys = [...new Set(withStats.flatMap((o) => Object.keys(o.policyStats!)))]
  return Object.fromEntries(keys.map((k) => [k, withStats.reduce((s, o) => s + (o.policyStats![k] ?? 0), 0) / withStats.length]))
}

/** Averages sample outcomes into cells, in the order the cells were first asked for. */
export function aggregate(outcomes: readonly SampleOutcome[], order: readonly { policy: string; task: string; length: number }[]): EvalResult[] {
  return order.map(({ policy, task, length }) => {
    const xs = outcomes.filter((o) => o.policy === policy && o.task === task && o.length === length).sort((a, b) => a.index - b.index)
    const mean = (f: (o: SampleOutcome) => number): number => (xs.length ? xs.reduce((s, o) => s + f(o), 0) / xs.length : NaN)
    return {
      policy,
      task,
      length,
      samples: xs.length,
      accuracy: mean((o) => (o.correct ? 1 : 0)),
      accuracyInterval: wilsonInterval(xs.filter((o) => o.correct).length, xs.length),
      score: mean((o) => o.score),
      kvBytes: mean((o) => o.kvBytes),
      kvBytesFull: mean((o) => o.kvBytesFull),
      prefillMs: mean((o) => o.prefillMs),
      compressMs: mean((o) => o.compressMs),
      decodeMsPerToken: mean((o) => o.decodeMsPerToken),
      kernels: [...new Set(xs.map((o) => o.kernels))].join(','),
      kvDtype: [...new Set(xs.map((o) => o.kvDtype))].join(','),
      question: [...new Set(xs.map((o) => o.question))].join(','),
      newTokens: mean((o) => o.newTokens),
      ...(meanCounters(xs) ? { policyStats: meanCounters(xs) } : {}),
      ...(xs.length && xs.every((o) => o.diffusion)
        ? { diffusion: { decodeMs: mean((o) => o.diffusion!.decodeMs), computeRatio: mean((o) => o.diffusion!.computeRatio), refreshSteps: mean((o) => o.diffusion!.refreshSteps) } }
        : {}),
    }
  })
}

/**
 * The 95% Wilson score interval of a share of `k` successes out of `n` (Wilson 1927; Agresti & Coull
 * 1998, "Approximate is better than exact"): unlike the normal approximation it stays inside [0, 1] and
 * is not empty at 0 or n successes, which a cell of 8 samples often has.
 */
export function wilsonInterval(k: number, n: number, z = 1.959964): [number, number] {
  if (n === 0) return [0, 1]
  const p = k / n
  const z2 = z * z
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n)
  return [Math.max(0, centre - half), Math.min(1, centre + half)]
}

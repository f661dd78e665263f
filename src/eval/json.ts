import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { EvalResult } from './results.js'

/** `{ "results": [ { policy, task, length, samples, accuracy, accuracyInterval, score, kvBytes, kvBytesFull, prefillMs, compressMs, decodeMsPerToken, kernels, kvDtype, newTokens, policyStats?, diffusion? } ] }` (diffusion: a diffusion model's decodeMs, computeRatio, refreshSteps) */
export function resultsJson(results: readonly EvalResult[]): string {
  const keys: (keyof EvalResult)[] = ['policy', 'task', 'length', 'samples', 'accuracy', 'accuracyInterval', 'score', 'kvBytes', 'kvBytesFull', 'prefillMs', 'compressMs', 'decodeMsPerToken', 'kernels', 'kvDtype', 'newTokens', 'policyStats', 'diffusion']
  return JSON.stringify({ results: results.map((r) => Object.fromEntries(keys.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]))) }, null, 2) + '\n'
}

export function writeJson(file: string, results: readonly EvalResult[]): void {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, resultsJson(results))
}

import { checkOutputPath, writeOutputFile } from './output.js'
import { checkResults, type EvalResult } from './results.js'

/** `{ "results": [ { policy, task, length, samples, accuracy, accuracyInterval, score, kvBytes, kvBytesFull, prefillMs, compressMs, decodeMsPerToken, kernels, kvDtype, question, newTokens, policyStats?, diffusion? } ] }` (diffusion: a diffusion model's decodeMs, computeRatio, refreshSteps) */
export function resultsJson(results: readonly EvalResult[]): string {
  checkResults(results, 'resultsJson')
  const keys: (keyof EvalResult)[] = ['policy', 'task', 'length', 'samples', 'accuracy', 'accuracyInterval', 'score', 'kvBytes', 'kvBytesFull', 'prefillMs', 'compressMs', 'decodeMsPerToken', 'kernels', 'kvDtype', 'question', 'newTokens', 'policyStats', 'diffusion']
  return JSON.stringify({ results: results.map((r) => Object.fromEntries(keys.filter((k) => r[k] !== undefined).map((k) => [k, r[k]]))) }, null, 2) + '\n'
}

/**
 * Writes resultsJson(results) to `file` (its folders made), replacing a file there whole or not at all.
 * Throws EvalOutputError naming `file` where it cannot be written (a folder, a file on its path, no permission).
 */
export function writeJson(file: string, results: readonly EvalResult[]): void {
  checkOutputPath(file, 'results JSON')
  writeOutputFile(file, resultsJson(results), 'results JSON')
}

// kvkit/eval: the evaluation harness as a library (Node, Bun, Deno): the code the `kvkit eval` command runs.
export { evaluate, planEvaluation, EvalArgumentError, DEFAULT_SEED, type EvalOptions, type EvalProgress } from './runner.js'
export type { EvalResult, SampleOutcome } from './results.js'
export { TASK_NAMES, type TaskName } from './tasks.js'
export { PromptBuilder, type TaskSample, type PromptPiece } from './prompt.js'
export { strictCorrect, rulerScore } from './score.js'
export { perplexity } from './perplexity.js'
export { renderReport, writeReport, type ReportMeta } from './report.js'
export { resultsJson, writeJson } from './json.js'
export { EvalOutputError } from './output.js'
export { loadBooks, type Book } from './text.js'
export { diffusionCacheFromSpec, type DiffusionDecoding, type DiffusionOutcome } from './diffusion.js'
// what perplexity throws for a masked diffusion LM, the root's class
export { DecodingModeError } from '../model/errors.js'

/**
 * `npm start`: a quick comparison of the key policies at two budgets on the bundled model. Add a policy
 * to the comparison by adding its spec to MAIN_POLICIES.
 */
import { join } from 'node:path'
import { packageRoot } from './paths.js'

export const MAIN_POLICIES: string[] = [
  'full',
  'snapkv:budget=0.5',
  'snapkv:budget=0.25',
  'adakv:budget=0.5',
  'adakv:budget=0.25',
  'streamingllm:budget=0.25',
  // kvkit's own method, the recommended default (README "UnionKV"): per-head LagKV picks + one model-wide selection topped up per layer
  'unionkv:budget=0.5',
  'unionkv:budget=0.25',
  // the same with the bundled model's learned gates (README "Recommended default"): 91-98.5% of full at 25%
  `unionkv:budget=0.25,gatesFile=${join(packageRoot(), 'models', 'fixture-14m-trimkv', 'gates-M512.safetensors')}`,
]

/** the tasks on which a policy's loss of information shows clearly on this model (tasks.md) */
export const MAIN_TASKS = ['passkey', 'niah_single', 'vt']
export const MAIN_LENGTHS = [4096]
/** 8 samples a cell: enough that policies 30 points apart separate (the report shows each cell's 95% interval) */
export const MAIN_SAMPLES = 8
export const MAIN_SEED = 1
export const MAIN_REPORT_DIR = 'report'

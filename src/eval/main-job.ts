/**
 * `npm start`: a quick comparison of the key policies at 50%, 25% and 12.5% on the bundled model, in both of
 * kvpress's loops: the question compressed with the context (MAIN_POLICIES) and after it, a document
 * compressed for reuse (MAIN_AFTER_POLICIES: UnionKV, whose votes then come from the context's own last
 * queries, and LagKV). The cache is float16
 * (MAIN_KV_DTYPE, the element type kvpress's presses run in), so "KV kept" is a share of a float16 cache
 * and a policy that packs rows (`bits`) is compared at equal bytes. Add a policy to the comparison by
 * adding its spec to the lists.
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
  // kvkit's own method as token eviction (README "UnionKV"): per-head LagKV picks + one model-wide selection topped up per layer
  'unionkv:budget=0.5',
  'unionkv:budget=0.25',
  // the same with the bundled model's learned gates (README "Recommended default"): 91-98.5% of full at 25%
  `unionkv:budget=0.25,gatesFile=${join(packageRoot(), 'models', 'fixture-14m-trimkv', 'gates-M512.safetensors')}`,
  // UnionKV at a byte budget, the recommended default: the kept tokens packed in int4, so 12.5% of a float16
  // cache's bytes hold about 44% of the tokens
  'unionkv:budget=0.25,bits=4',
  'unionkv:budget=0.125,bits=4',
  // kvpress's strongest press with real memory freed (peers.md)
  'lagkv:budget=0.25',
]

/** the settings run again with the question prefilled after the compressed context (eval's --question after) */
export const MAIN_AFTER_POLICIES: string[] = ['full', 'unionkv:budget=0.25', 'unionkv:budget=0.25,bits=4', 'unionkv:budget=0.125,bits=4', 'lagkv:budget=0.25']

export const MAIN_KV_DTYPE = 'float16'
/** where the question-after loop's report goes, inside MAIN_REPORT_DIR */
export const MAIN_AFTER_REPORT = 'question-after'

/** the tasks on which a policy's loss of information shows clearly on this model (tasks.md) */
export const MAIN_TASKS = ['passkey', 'niah_single', 'vt']
export const MAIN_LENGTHS = [4096]
/** 8 samples a cell: enough that policies 30 points apart separate (the report shows each cell's 95% interval) */
export const MAIN_SAMPLES = 8
export const MAIN_SEED = 1
export const MAIN_REPORT_DIR = 'report'

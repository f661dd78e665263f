/**
 * Command-line options of bench/webgpu-decode.ts, checked before any file is read or model loaded: a
 * bad value is a DecodeBenchArgumentError that names it.
 */
import { parseArgs } from 'node:util'
import type { BackendName } from '../src/backend/backend.js'
import { KV_DTYPES, type KVDtype } from '../src/cache/formats.js'
import { DEFAULT_SEED } from '../src/eval/runner.js'
import { isTaskName, TASK_NAMES, type TaskName } from '../src/eval/tasks.js'
import { getPolicyDefinition, parsePolicySpecs } from '../src/policies/registry.js'

export class DecodeBenchArgumentError extends Error {
  override name = 'DecodeBenchArgumentError'
}

/** full cache, the README's recommended eviction, TokenSelect at the Selection Cache bench's setting */
export const DEFAULT_POLICIES = ['full', 'unionkv:budget=0.25', 'tokenselect:tokens=512,first=32,last=64']
const BACKENDS: readonly BackendName[] = ['wasm', 'webgpu', 'reference', 'auto']
/** the eval's prompt builder needs room for the needles, the question and some haystack */
const MIN_LENGTH = 256
const MAX_LENGTH = 131072

export interface DecodeBenchOptions {
  /** the model folder (default: the bundled fixture) */
  model: string
  backend: BackendName
  /** prompt lengths in tokens, ascending order as given */
  lengths: number[]
  /** greedy decode steps per generation (end-of-sequence ignored) */
  newTokens: number
  /** policy spec strings; 'full' is the one PyTorch is checked against */
  policies: string[]
  /** timed generations per (length, policy), after the warm-up; medians are over these */
  runs: number
  task: TaskName
  seed: number
  threads?: number
  /** prefill chunk in tokens (the model's default, 128, when absent): the GPU's prefill kernels fill it better at 512+ */
  chunk?: number
  /** the cache's element type (loadModel's kvDtype; float16 pages are appended and attended on the GPU too) */
  kvDtype: KVDtype
  idsOut?: string
  json?: string
  /** write --ids-out and stop: no generation (the prompts for PyTorch when a backend cannot run) */
  idsOnly: boolean
}

export const USAGE = `node dist/bench/webgpu-decode.js [--backend wasm|webgpu|reference|auto] [--lengths 4096,8192] [--new 64]
  [--policies ${DEFAULT_POLICIES.join(',')}] [--runs 3] [--task passkey] [--seed ${DEFAULT_SEED}] [--threads N] [--chunk N] [--kv-dtype float32|float16]
  [--model DIR] [--ids-out ids.json [--ids-only]] [--json out.json]`

function integer(flag: string, raw: string, min: number, max: number): number {
  const n = Number(raw)
  if (raw.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new DecodeBenchArgumentError(`--${flag}: ${JSON.stringify(raw)} is not an integer in [${min}, ${max}]`)
  return n
}

/**
 * Splits a comma-separated list of specs whose own options are comma-separated too: a piece that is a
 * `key=value` (its '=' before any ':') continues the spec before it, anything else starts a spec.
 *   'full,unionkv:budget=0.25,tokenselect:tokens=512,first=32' -> full | unionkv:... | tokenselect:tokens=512,first=32
 */
export function splitPolicyList(raw: string): string[] {
  const specs: string[] = []
  for (const piece of raw.split(',').map((s) => s.trim())) {
    const eq = piece.indexOf('=')
    const colon = piece.indexOf(':')
    const option = eq > 0 && (colon < 0 || eq < colon)
    if (option && specs.length > 0 && specs[specs.length - 1] !== '') specs[specs.length - 1] += ',' + piece
    else specs.push(piece)
  }
  return specs
}

function policySpecs(raw: string): string[] {
  const specs = splitPolicyList(raw)
  if (specs.some((s) => s === '')) throw new DecodeBenchArgumentError(`--policies: ${JSON.stringify(raw)} has an empty spec`)
  for (const spec of specs) {
    try {
      for (const part of parsePolicySpecs(spec)) if (part.name !== 'full') getPolicyDefinition(part.name)
    } catch (e) {
      throw new DecodeBenchArgumentError(`--policies: ${JSON.stringify(spec)}: ${(e as Error).message}`)
    }
  }
  if (new Set(specs).size !== specs.length) throw new DecodeBenchArgumentError(`--policies: ${JSON.stringify(raw)} names a policy twice`)
  return specs
}

/** Parses and checks argv (without node and the script); policy options are checked later against the model's shape. */
export function parseDecodeBenchArgs(argv: readonly string[], defaultModel: string): DecodeBenchOptions {
  let v: Record<string, string | undefined>
  let idsOnly = false
  try {
    const parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        ...Object.fromEntries(['model', 'backend', 'lengths', 'new', 'policies', 'runs', 'task', 'seed', 'threads', 'chunk', 'kv-dtype', 'ids-out', 'json'].map((k) => [k, { type: 'string' as const }])),
        'ids-only': { type: 'boolean' },
      },
    }).values
    idsOnly = parsed['ids-only'] === true
    v = parsed as Record<string, string | undefined>
  } catch (e) {
    throw new DecodeBenchArgumentError(`${(e as Error).message}\nusage: ${USAGE}`)
  }
  const backend = v.backend ?? 'wasm'
  if (!BACKENDS.includes(backend as BackendName)) throw new DecodeBenchArgumentError(`--backend: ${JSON.stringify(backend)} is not one of ${BACKENDS.join(', ')}`)
  const lengths = (v.lengths ?? '4096,8192').split(',').map((x) => integer('lengths', x, MIN_LENGTH, MAX_LENGTH))
  if (new Set(lengths).size !== lengths.length) throw new DecodeBenchArgumentError(`--lengths: ${JSON.stringify(v.lengths)} names a length twice`)
  const kvDtype = v['kv-dtype'] ?? 'float32'
  if (!KV_DTYPES.includes(kvDtype as KVDtype)) throw new DecodeBenchArgumentError(`--kv-dtype: ${JSON.stringify(kvDtype)} is not one of ${KV_DTYPES.join(', ')}`)
  const task = v.task ?? 'passkey'
  if (!isTaskName(task)) throw new DecodeBenchArgumentError(`--task: ${JSON.stringify(task)} is not one of ${TASK_NAMES.join(', ')}`)
  for (const [flag, path] of [['ids-out', v['ids-out']], ['json', v.json], ['model', v.model]] as const)
    if (path !== undefined && path.trim() === '') throw new DecodeBenchArgumentError(`--${flag}: empty path`)
  if (idsOnly && v['ids-out'] === undefined) throw new DecodeBenchArgumentError('--ids-only writes the prompt ids: give --ids-out FILE')
  return {
    idsOnly,
    model: v.model ?? defaultModel,
    backend: backend as BackendName,
    lengths,
    newTokens: integer('new', v.new ?? '64', 1, 4096),
    policies: policySpecs(v.policies ?? DEFAULT_POLICIES.join(',')),
    runs: integer('runs', v.runs ?? '3', 1, 100),
    task,
    seed: integer('seed', v.seed ?? String(DEFAULT_SEED), 0, 2 ** 31 - 1),
    threads: v.threads === undefined ? undefined : integer('threads', v.threads, 1, 1024),
    chunk: v.chunk === undefined ? undefined : integer('chunk', v.chunk, 1, 4096),
    kvDtype: kvDtype as KVDtype,
    idsOut: v['ids-out'],
    json: v.json,
  }
}

/**
 * One spec per registered policy for the grids that sweep every policy (short prompts, one-token
 * prompts, per-request state): a test fails when a policy is registered without an entry here, so a
 * new policy joins every grid. Variants that carry decode-time state (every=N) are listed too.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { listPolicies } from '../src/policies/registry.js'
import type { ModelShape } from '../src/policies/types.js'
import { rng } from './kernels-helpers.js'
import { safetensorsF32 } from './tiny-model.js'

/** a TRIM-KV gates file with seeded random gates for a model of this shape */
export function randomGatesFile(m: ModelShape & { hidden: number }, seed = 1): string {
  const r = rng(seed)
  const layers = Array.from({ length: m.layers }, () => ({
    weight: Array.from({ length: m.kvHeads }, () => Array.from({ length: m.hidden }, () => (r() - 0.5) * 0.2)),
    bias: Array.from({ length: m.kvHeads }, () => r() * 2),
  }))
  const dir = mkdtempSync(join(tmpdir(), 'kvkit-gates-'))
  const path = join(dir, 'gates.json')
  writeFileSync(path, JSON.stringify({ format: 'trimkv-gates', hidden: m.hidden, kvHeads: m.kvHeads, layers }))
  return path
}

/** a NOSA scores file (safetensors) with seeded random scores over the value rows of a model of this shape */
export function randomScoresFile(m: ModelShape, seed = 2): string {
  const r = rng(seed)
  const path = join(mkdtempSync(join(tmpdir(), 'kvkit-scores-')), 'scores.safetensors')
  writeFileSync(path, safetensorsF32(Array.from({ length: m.layers }, (_, l) => [
    { name: `scores.${l}.weight`, shape: [m.kvHeads, m.headDim], data: Float32Array.from({ length: m.kvHeads * m.headDim }, () => r() - 0.5) },
    { name: `scores.${l}.bias`, shape: [m.kvHeads], data: Float32Array.from({ length: m.kvHeads }, () => r()) },
  ]).flat()))
  return path
}

/**
 * every registered policy's spec(s): name -> specs, options the grid adds after `:` or `,`; with a
 * scores file, NOSA's learned scores join the grid too
 */
export function specsPerPolicy(gatesFile: string, scoresFile?: string): Map<string, string[]> {
  const specs: Record<string, string[]> = {
    streamingllm: ['streamingllm:sinks=4', 'streamingllm:sinks=2,every=2', 'streamingllm:sinks=2,rerotate=true,every=3'],
    h2o: ['h2o', 'h2o:every=1', 'h2o:every=2,compensate=true'],
    snapkv: ['snapkv', 'snapkv:every=2', 'snapkv:window=8,sinks=2'],
    pyramidkv: ['pyramidkv:window=8', 'pyramidkv:every=2'],
    adakv: ['adakv:window=8', 'adakv:every=2,scope=model'],
    knorm: ['knorm', 'knorm:every=2'],
    tova: ['tova', 'tova:every=1'],
    keyformer: ['keyformer:window=8', 'keyformer:steps=2'],
    windowkv: ['windowkv', 'windowkv:task=qa'],
    razorattention: ['razorattention:heads=0.0;3.1'],
    think: ['think:window=8,recent=2'],
    kvmerger: ['kvmerger:window=8'],
    mpcache: ['mpcache', 'mpcache:tau=0.05'],
    trimkv: [`trimkv:gatesFile=${gatesFile},every=2`],
    lagkv: ['lagkv', 'lagkv:lag=4,cross=true'],
    kvzip: ['kvzip:chunk=8', 'kvzip:plus=true,layerwise=true'],
    criticalkv: ['criticalkv:window=8'],
    criticaladakv: ['criticaladakv:window=8'],
    compactor: ['compactor', 'compactor:chunk=4,sketch=4'],
    unionkv: ['unionkv', 'unionkv:every=2', 'unionkv:window=8,contrast=8,agnostic=0.25,lag=4', `unionkv:agnostic=0.75,gatesFile=${gatesFile}`, `unionkv:agnostic=0.5,lagShare=0.25,lag=4,gatesFile=${gatesFile}`, 'unionkv:budget=0.125,bits=2', 'unionkv:budget=0.5,bits=4,agnostic=0.25,lag=4'],
    tokenselect: ['tokenselect:first=2,last=2', 'tokenselect:tokens=8,first=2,last=2', 'tokenselect:budget=0.5,cache=false,vote=head', 'tokenselect:tokens=8,first=1,last=2,rope=selected', 'tokenselect:tokens=8,first=2,last=2,dense=1,pool=3'],
    quest: ['quest:page=4', 'quest:tokens=8,page=4', 'quest:budget=0.5,dense=0'],
    delta: ['delta:page=2,recent=1', 'delta:tokens=8,page=2,recent=1', 'delta:budget=0.5,full=0,interval=2'],
    nosa: ['nosa:block=2', 'nosa:tokens=8,block=2', 'nosa:budget=0.5,block=4,agnostic=1', ...(scoresFile ? [`nosa:block=2,scoresFile=${scoresFile}`] : [])],
    shadowkv: ['shadowkv:chunk=2,outliers=1,sink=1,local=2,rank=4', 'shadowkv:tokens=8,chunk=2,outliers=2,sink=0,local=2,rank=2', 'shadowkv:budget=0.5,chunk=4,outliers=0,rank=16'],
    mpcache_select: ['mpcache_select:cluster=4,block=2', 'mpcache_select:cluster=8,block=4,share=1,alpha=0.5'],
    kivi: ['kivi:residual=2', 'kivi:bits=4,residual=0'],
    mikv: ['mikv:residual=2', 'mikv:hi=4,lo=1,important=0.5,residual=0'],
    vidkv: ['vidkv:residual=2', 'vidkv:keyBits=1.25,valueBits=2,residual=0', 'vidkv:keyBits=1,salient=0.5,window=4,residual=0', 'vidkv:groupSize=128,residual=0'],
  }
  const out = new Map<string, string[]>()
  for (const p of listPolicies()) {
    const s = specs[p.name]
    if (!s) throw new Error(`policy ${p.name} is registered but has no spec in test/policy-grid-helpers.ts: add one so every grid covers it`)
    out.set(p.name, s)
  }
  return out
}

/** appends an option to a spec */
export function withOption(spec: string, option: string): string {
  return spec + (spec.includes(':') ? ',' : ':') + option
}

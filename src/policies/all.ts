/**
 * Every built-in policy, registered by registry.ts at load. Add a policy by importing its definition and
 * listing it in the block of its kind (each block its own lines, so merges never touch the same ones).
 */
import type { PolicyDefinition } from './registry.js'
import { adakv } from './adakv.js'
import { h2o } from './h2o.js'
import { knorm } from './knorm.js'
import { pyramidkv } from './pyramidkv.js'
import { snapkv } from './snapkv.js'
import { streamingllm } from './streamingllm.js'
import { tova } from './tova.js'
import { unionkv } from './unionkv.js'

const tokenEviction: PolicyDefinition[] = [streamingllm, h2o, snapkv, pyramidkv, adakv, knorm, tova, unionkv]

//
//
//
//
//
//
//
//
// ---- learned, windowed, merging, channel and static-threshold methods (Keyformer, WindowKV, RazorAttention, ThinK, KVMerger, MPCache static, TRIM-KV) ----
import { keyformer } from './keyformer.js'
import { windowkv } from './windowkv.js'
import { razorattention } from './razorattention.js'
import { think } from './think.js'
import { kvmerger } from './kvmerger.js'
import { mpcache } from './mpcache.js'
import { trimkv } from './trimkv.js'
const moreMethods: PolicyDefinition[] = [keyformer, windowkv, razorattention, think, kvmerger, mpcache, trimkv]

// ---- peers (kvpress's strongest presses: LagKV, KVzip, CriticalKV / CriticalAdaKV, Compactor) ----
import { lagkv } from './lagkv.js'
import { kvzip } from './kvzip.js'
import { criticalkv, criticaladakv } from './criticalkv.js'
import { compactor } from './compactor.js'
const peers: PolicyDefinition[] = [lagkv, kvzip, criticalkv, criticaladakv, compactor]

// ---- selection (dynamic per-step selection over the whole cache: TokenSelect, Quest, ...) ----
import { tokenselect } from './tokenselect.js'
import { quest } from './quest.js'
import { delta } from './delta.js'
import { mpcacheSelect } from './mpcache-select.js'
import { nosa } from './nosa.js'
import { shadowkv } from './shadowkv.js'
const selection: PolicyDefinition[] = [tokenselect, quest, delta, mpcacheSelect, nosa, shadowkv]

// ---- quantization (KIVI, MiKV, VidKV) ----
import { kivi } from './kivi.js'
import { mikv } from './mikv.js'
const quantization: PolicyDefinition[] = [kivi, mikv]

export const builtinPolicies: PolicyDefinition[] = [...tokenEviction, ...moreMethods, ...peers, ...selection, ...quantization]

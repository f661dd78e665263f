import { describe, expect, it } from 'vitest'
import { bundleForBrowser } from './browser-bundle.js'

// Each entry exports its API and nothing else (README, "Entry points"): a new export is a decision.
const API: Record<string, string[]> = {
  '../src/index.ts': [
    'CacheError', 'ModelInputError', 'ModelLoadError', 'ContextLengthError', 'ModelDisposedError', 'NonFiniteError', 'DecodingModeError', 'elasticCache', 'PagedKVCache', 'WasmLoadError', 'pageBytes', 'KV_DTYPES',
    'PolicySpecError', 'PolicySpecSyntaxError', 'UnknownPolicyError', 'UnknownPolicyOptionError', 'PolicyOptionValueError',
    'PolicyOptionConflictError', 'PolicyFileError', 'GateFileError', 'NosaScoresFileError', 'PolicyCompositionError', 'ThreadPoolError', 'BackendOptionsError', 'statelessPolicy', 'composePolicies',
    'adakv', 'compose', 'createBackend', 'createPolicy', 'full', 'h2o', 'isPolicyConfig', 'keyformer', 'kivi', 'knorm', 'kvmerger',
    'listPolicies', 'loadModel', 'loadWasm', 'mikv', 'vidkv', 'mpcache', 'parsePolicySpec', 'policyConfig', 'policyFromSpec', 'pyramidkv',
    'razorattention', 'registerPolicy', 'snapkv', 'streamingllm', 'supportsRelaxedSimd', 'supportsSimd', 'hasHardwareAdapter', 'WebGpuUnavailableError', 'GpuArenaCapacityError', 'think', 'tova', 'trimkv', 'unionkv', 'windowkv', 'quest', 'tokenselect', 'delta', 'mpcacheSelect', 'nosa', 'shadowkv', 'selectionPolicy',
    'compactor', 'criticaladakv', 'criticalkv', 'kvzip', 'lagkv',
    'Sequence', 'PrefixCache', 'ReuseError', 'blockHashes', 'keyRotation', 'CacheBlend', 'graphKV', 'MemoryChunkStore', 'IndexedDbChunkStore', 'OpfsChunkStore', 'KVShare', 'alignTokens', 'chooseTtl', 'simulateAgents', 'syntheticAgentTrace', 'sharePriority', 'simulateShare', 'editedPairTrace',
  ],
  '../src/kernels.ts': ['F32Buf', 'Heap', 'HeapError', 'I32Buf', 'Ops', 'ShapeError', 'attendCache', 'contiguousView', 'createBackend', 'BackendOptionsError', 'referenceKernels', 'wasmKernels'],
  '../src/node/index.ts': ['DirectorySource', 'loadModel', 'FileChunkStore', 'RedisChunkStore', 'nodeThreads', 'nodeWorkerSpawner', 'ModelLoadError', 'ModelInputError', 'ReuseError'],
  '../src/mpc/index.ts': [
    'ChaCha20Prg', 'CostError', 'CostLog', 'DEFAULT_SEEDS', 'DcfError', 'DealerStream', 'FixedPointError', 'LAN', 'MPCacheOptionError', 'NetworkModelError', 'Party', 'PartyClosedError', 'PlainFixedPoint', 'PrgSeedError', 'ProtocolError', 'RingShapeError', 'TransportError', 'TRUNC_MODES', 'WAN', 'WasmRing', 'addCost', 'attendShares', 'concatWords', 'createInProcessParties', 'createParty', 'createWasmRing', 'customNetwork', 'dcfEval', 'dcfGen', 'dcfKeyBytes', 'decodeFixed', 'decodeStepAttention', 'dynamicPlan', 'encodeFixed', 'exp', 'fixedConst', 'gatherOneHot', 'groupSummaries', 'inProcessPair', 'maxRows', 'modelledSeconds', 'mpcacheDynamicSelect', 'mpcacheSelect', 'mpcacheSelectedCount', 'mpcacheStaticEvict', 'mpcacheSummaries', 'operatorTable', 'reciprocal', 'referenceRing', 'resolveDynamicOptions', 'runBoth', 'seedFromString', 'select', 'softmax', 'splitSecret', 'spuEstimate', 'spuSeconds', 'SpuEstimateError', 'subCost', 'textTable', 'throttled', 'topK', 'zeroCost',
  ],
  '../src/serve/index.ts': ['ApiError', 'CHATML_TEMPLATE', 'ChatTemplate', 'KVScheduler', 'ServeEngine', 'ToolCallStream', 'parseToolCall', 'serve', 'serveHandler', 'serveApp', 'ModelInputError', 'DecodingModeError'],
  '../src/eval/index.ts': [
    'DEFAULT_SEED', 'EvalArgumentError', 'EvalOutputError', 'DecodingModeError', 'PromptBuilder', 'diffusionCacheFromSpec', 'TASK_NAMES', 'evaluate', 'loadBooks', 'perplexity', 'planEvaluation',
    'renderReport', 'resultsJson', 'rulerScore', 'strictCorrect', 'writeJson', 'writeReport',
  ],
}

describe('entry points', () => {
  it.each(Object.keys(API))('%s exports its API and nothing else', async (entry) => {
    const names = Object.keys(await import(entry)).sort()
    // policy factories come from the registry (one per policy): any other name must be listed
    expect(names).toEqual([...API[entry]].sort())
  })

  it.each(['src/index.ts', 'src/kernels.ts', 'src/mpc/index.ts'])('%s bundles for the browser with no Node builtin anywhere in its module graph', async (entry) => {
    const { code, nodeImports, errors } = await bundleForBrowser(entry)
    expect(nodeImports).toEqual([])
    expect(errors).toEqual([])
    expect(code).toContain('loadWasm')
  })

  it('the check would catch a Node import: kvkit/node does not bundle for the browser', async () => {
    const { nodeImports } = await bundleForBrowser('src/node/index.ts')
    expect(nodeImports.some((m) => m.startsWith('node:fs/promises'))).toBe(true)
  })
})

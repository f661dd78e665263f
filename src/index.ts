// kvkit's root entry: runs in browsers, workers, Node, Bun and Deno. Nothing here (nor anything it
// imports) touches `node:` modules: test/entry-browser.test.ts bundles it for the browser to prove it.
// Node-only parts live in kvkit/node (folders on disk) and kvkit/eval (harness, report); raw kernels
// and the arena in kvkit/kernels.

// model: load from a URL, picked files or any source; generate with a KV-cache policy
export { loadModel, type ModelInput } from './model/load.js'
export type { ModelFileSource, ModelFiles, LoadProgress } from './model/source.js'
export type { LlamaModel } from './model/model.js'
export type {
  Model, ModelConfig, LoadOptions, GenerateOptions, GenerateResult, LogitsOptions, GenerateStats, Generation, GeneratedToken, KeptTokens, Tokenizer, FinishReason,
} from './model/types.js'
export { ModelLoadError, ModelInputError, ContextLengthError, ModelDisposedError, NonFiniteError, DecodingModeError } from './model/errors.js'
// masked diffusion LMs (Dream): iterative unmasking, Elastic-Cache
export { elasticCache, type ElasticCacheConfig, type DiffusionGenerateOptions, type DiffusionStep } from './model/diffusion/options.js'
export type { DiffusionResult, DiffusionStats, DiffusionCacheStats } from './model/diffusion/decode.js'
// the KV cache
export { PagedKVCache } from './cache/paged-cache.js'
export type { KVCache, KVCacheOptions, KeyStorage, CacheBytes, Decision, HeadDecision, HeadEviction, HeadSegment } from './cache/types.js'
export { CacheError } from './cache/errors.js'
export type { PageStore, Tier, Page, TierBytes } from './cache/page-store.js'
// the KV store's page formats: their byte accounting (a page of any format, before it is allocated)
export { pageBytes, KV_DTYPES, type KVDtype, type PageFormat, type StreamRole, type FormatInfo } from './cache/formats.js'
// policies: typed factories, spec strings, the registry
export * from './policies/factories.js'
export { createPolicy, listPolicies, parsePolicySpec, registerPolicy } from './policies/registry.js'
export * from './policies/errors.js'
// the policy files' own kinds of PolicyFileError (TRIM-KV's gates, NOSA's learned scores)
export { GateFileError } from './policies/trimkv-gates.js'
export { NosaScoresFileError } from './policies/nosa-scores.js'
// writing your own policy: sessions for prompt-only policies, compositions of built policies
export { statelessPolicy, type StatelessPolicy } from './policies/stateless.js'
export { selectionPolicy, type Selection, type Selector, type SelectionPolicySpec } from './policies/selection.js'
export { composePolicies } from './policies/compose.js'
export type { PolicyDefinition, OptionSpec, PolicyStage, OptionValue, ParsedSpec } from './policies/registry.js'
export type { Policy, PolicySession, PolicyTraits, PolicyNeeds, PolicyContext, LayerHooks, ModelShape } from './policies/types.js'
// backends and the wasm core (by URL or bytes in browsers)
export { createBackend, BackendOptionsError, type BackendOptions, type CreatedBackend } from './backend/index.js'
export type { SpawnWorker, KernelWorker } from './backend/threads/spawn.js'
// a kernel worker that failed, or a call on a closed pool (a model with threads, after dispose)
export { ThreadPoolError } from './backend/threads/pool.js'
export type { BackendName } from './backend/backend.js'
export { loadWasm, supportsSimd, supportsRelaxedSimd, WasmLoadError } from './backend/wasm/load.js'
// WebGPU: whether backend 'auto' would take this runtime's adapter; why a forced 'webgpu' has no device
export { hasHardwareAdapter, WebGpuUnavailableError, GpuArenaCapacityError } from './backend/webgpu/index.js'
export type { WasmSource, WasmLoadOptions, LoadedWasm, WasmBuild } from './backend/wasm/load.js'
// reuse across requests: sequences (fork, rollback), the prefix cache, key re-rotation
export * from './reuse/index.js'
export type { KVReuse, ReuseHandle } from './model/types.js'
export type { KeyRotation } from './cache/types.js'

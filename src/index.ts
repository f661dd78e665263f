// kvkit's public API.
export * from './backend/heap.js'
export * from './backend/backend.js'
export * from './backend/ops.js'
export type * from './cache/types.js'
export type * from './policies/types.js'
export type * from './model/types.js'
export { createPolicy, listPolicies, parsePolicySpec, registerPolicy } from './policies/registry.js'
export type { PolicyDefinition, OptionSpec, PolicyStage } from './policies/registry.js'

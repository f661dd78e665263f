/** Messages between the playground page (main.ts) and its model worker (worker.ts). */
import type { CacheBytes, LoadProgress } from '../src/index.js'

/** where the model comes from: the folder the server serves at ./model/, or files the user picked */
export type ModelChoice = { kind: 'served'; url: string } | { kind: 'files'; files: Map<string, Blob> }

/**
 * Which backend loadModel runs on: 'auto' (WebGPU on a hardware adapter, else wasm), or one forced;
 * 'webgpu' runs even on a software adapter (SwiftShader, lavapipe), and fails with
 * WebGpuUnavailableError's message where there is none.
 */
export type BackendChoice = 'auto' | 'webgpu' | 'wasm'
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm']

export interface RunRequest {
  /** 'passkey': a passkey prompt over `text`'s sentences; 'text': `text` as the prompt, continued */
  task: 'passkey' | 'text'
  text: string
  /** passkey: the prompt length in tokens (prompt + answer + end token, as the eval counts it) */
  length: number
  seed: number
  maxNewTokens: number
  /** the two policies, as spec strings ('' is the full cache) */
  policies: string[]
}

export type ToWorker = { type: 'load'; model: ModelChoice; backend: BackendChoice } | { type: 'run'; run: RunRequest }

/** one prompt token: its text (decoded alone) and whether it belongs to the needle */
export interface PromptToken {
  text: string
  needle: boolean
}

/**
 * Per (layer, KV head), per position: the share of reports at which the token was held (or, for a
 * policy that selects per step, attended to). [layers * kvHeads][positions], row-major.
 */
export interface HeatMap {
  layers: number
  kvHeads: number
  positions: number
  /** 'kept': eviction (the cache's content); 'attended': a per-step selection */
  measure: 'kept' | 'attended'
  values: Float32Array
}

export interface PolicyResult {
  index: number
  policy: string
  text: string
  correct: boolean | null
  ttftMs: number
  prefillMs: number
  decodeMsPerToken: number
  kvBytes: CacheBytes
  kvBytesFull: number
  heat: HeatMap
  /** the backend that ran it (model.backend.name), and its adapter for 'webgpu' */
  backend: string
  adapter: string
}

export type FromWorker =
  /** webgpu: the adapter's description, or null; hardware: whether backend 'auto' would take it */
  | { type: 'ready'; policies: { name: string; description: string }[]; webgpu: string | null; hardware: boolean }
  | { type: 'progress'; progress: LoadProgress }
  | { type: 'loaded'; backend: string; adapter: string; kernels: string; loadMs: number; layers: number; kvHeads: number; model: string }
  | { type: 'prompt'; tokens: PromptToken[]; expected: string | null }
  | { type: 'token'; index: number; text: string }
  | { type: 'result'; result: PolicyResult }
  /** name: the error's class (WebGpuUnavailableError, ModelLoadError, ...) */
  | { type: 'error'; index?: number; name: string; message: string }

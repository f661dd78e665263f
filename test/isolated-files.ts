/**
 * Which test files run in a process of their own (vitest's `isolate`) and in what order, for the CI's two
 * forks on two cores (vitest.config.ts).
 *
 * Isolation costs about a second of a core per file (a fresh fork, and every module of src/ evaluated
 * again): measured on 30 of the quick files, 26.5 s in isolated forks against 7.0 s in two shared ones.
 * So most files share their fork's modules, and these keep a fresh one each: the slow files that hold
 * worker pools, GPU devices, browsers or native libraries (a second saved is little beside their
 * minutes), and the quick ones that change process-wide state a later file would see, or need it fresh.
 */

/**
 * Files that took at least 3 s in the CI run of 2026-12-02 (.ci/run: 2 cores, 799 s, vitest's results
 * cache): the seconds each took, longest first. They start first, longest first, so no long file is
 * left running alone at the end; a slow new file belongs here too.
 */
export const SLOW_FILES: readonly (readonly [file: string, seconds: number])[] = [
  ['diffusion-golden.test.ts', 106],
  ['playground.test.ts', 94],
  ['runtime-webgpu.test.ts', 80],
  ['policies-parity-peers.test.ts', 60],
  ['threads-split-keys.test.ts', 54],
  ['runtime-webgpu-float16.test.ts', 42],
  ['package-install.test.ts', 26],
  ['eval-shared-prefill.test.ts', 26],
  ['threads-packed-attention.test.ts', 23],
  ['kv-float16-model.test.ts', 22],
  ['quest-bounds-incremental.test.ts', 22],
  ['threads-identical.test.ts', 21],
  ['kernels-webgpu.test.ts', 20],
  ['runtimes-load.test.ts', 20],
  ['topk-webgpu.test.ts', 20],
  ['bench-webgpu-decode.test.ts', 19],
  ['eval-kvzip-share.test.ts', 19],
  ['eval-fixture.test.ts', 18],
  ['policies-peers.test.ts', 17],
  ['browser-library.test.ts', 16],
  ['kv-store.test.ts', 16],
  ['browser-opfs-tier.test.ts', 15],
  ['packed-get-rows.test.ts', 14],
  ['policies-parity.test.ts', 14],
  ['reuse-kvshare.test.ts', 14],
  ['shadowkv.test.ts', 14],
  ['mpc-mpcache.test.ts', 13],
  ['gguf-load.test.ts', 12],
  ['serve-cli.test.ts', 12],
  ['browser-reuse-tiers.test.ts', 11],
  ['reuse-cacheblend.test.ts', 11],
  ['cli-run.test.ts', 10],
  ['tryout-runtimes-selection-packed-keys.test.ts', 10],
  ['eval-prompts-question.test.ts', 10],
  ['threads-compaction.test.ts', 10],
  ['tryout-compose-attention-mass-follows-ragged-heads.test.ts', 9],
  ['cli-errors.test.ts', 9],
  ['model-passkey.test.ts', 9],
  ['model-runtime.test.ts', 9],
  ['packed-quantize-model.test.ts', 9],
  ['vidkv.test.ts', 9],
  ['diffusion-decode.test.ts', 9],
  ['serve-chat.test.ts', 8],
  ['reuse-prefix-cache.test.ts', 8],
  ['eval-workers-one-build.test.ts', 8],
  ['serve-blend.test.ts', 8],
  ['gguf-node-llama-cpp.test.ts', 8],
  ['kernels-webgpu-score-variants.test.ts', 8],
  ['packed-quantize.test.ts', 7],
  ['trained-parts.test.ts', 7],
  ['serve-edit-reuse.test.ts', 7],
  ['webgpu-lifecycle.test.ts', 6],
  ['serve-tool-pins.test.ts', 6],
  ['policies-prepare.test.ts', 6],
  ['tryout-compose-prompt-readers-after-eviction-refused.test.ts', 6],
  ['report-render.test.ts', 6],
  ['reuse-kvshare-decode.test.ts', 5],
  ['policies-factories.test.ts', 5],
  ['mpc-passkey.test.ts', 5],
  ['kv-store-model.test.ts', 5],
  ['quest-packed-bounds.test.ts', 5],
  ['model-sources.test.ts', 5],
  ['runtimes-threads.test.ts', 5],
  ['reuse-cacheblend-cross-chunk.test.ts', 5],
  ['tryout-eval-throwing-callback-in-workers.test.ts', 5],
  ['tryout-eval-signal.test.ts', 5],
  ['tryout-runtimes-node-entry-idle-exit.test.ts', 5],
  ['reuse-cacheblend-filtering.test.ts', 5],
  ['policy-per-request-state.test.ts', 5],
  ['tryout-runtimes-wasm-option.test.ts', 4],
  ['reuse-rerotate.test.ts', 4],
  ['policy-short-prompt-promises.test.ts', 4],
  ['generate-kept.test.ts', 4],
  ['packed-cache.test.ts', 4],
  ['reuse-graph-kv.test.ts', 4],
  ['tryout-threads-float16-selection-scores-in-place.test.ts', 4],
  ['generate-streamed-text.test.ts', 4],
  ['reuse-sequence.test.ts', 4],
  ['cli-threads-option.test.ts', 4],
  ['entry-points.test.ts', 3],
  ['tryout-packed-quantizer-with-shadowkv-refused.test.ts', 3],
  ['policy-one-token-prompt.test.ts', 3],
]

/**
 * Slow files that share a fork all the same: one-thread wasm models, in-process servers and child
 * processes, no GPU, browser, worker pool, V8 flag or registry entry. They start with the slow ones.
 */
export const SLOW_BUT_SHARED: ReadonlySet<string> = new Set([
  'eval-prompts-question.test.ts',
  'model-passkey.test.ts',
  'model-runtime.test.ts',
  'packed-quantize-model.test.ts',
  'vidkv.test.ts',
  'diffusion-decode.test.ts',
  'serve-chat.test.ts',
  'reuse-prefix-cache.test.ts',
  'serve-blend.test.ts',
  'trained-parts.test.ts',
  'serve-edit-reuse.test.ts',
  'serve-tool-pins.test.ts',
  'policies-prepare.test.ts',
  'tryout-compose-prompt-readers-after-eviction-refused.test.ts',
  'tryout-compose-attention-mass-follows-ragged-heads.test.ts',
  'reuse-kvshare-decode.test.ts',
  'policies-factories.test.ts',
  'kv-store-model.test.ts',
  'quest-packed-bounds.test.ts',
  'reuse-cacheblend-cross-chunk.test.ts',
  'reuse-cacheblend-filtering.test.ts',
  'policy-per-request-state.test.ts',
  'reuse-rerotate.test.ts',
  'policy-short-prompt-promises.test.ts',
  'generate-kept.test.ts',
  'packed-cache.test.ts',
  'reuse-graph-kv.test.ts',
  'generate-streamed-text.test.ts',
  'reuse-sequence.test.ts',
  'tryout-packed-quantizer-with-shadowkv-refused.test.ts',
  'policy-one-token-prompt.test.ts',
  'reuse-cacheblend.test.ts',
  'gguf-load.test.ts',
  'cli-run.test.ts',
  'cli-errors.test.ts',
])

/** quick files that need a fresh process all the same, and why */
export const OWN_PROCESS: Readonly<Record<string, string>> = {
  'policies-registry.test.ts': 'registers a policy in the process-wide registry',
  'serve-policy-made-once.test.ts': 'registers a policy in the process-wide registry',
  'tryout-lib-register-policy-refuses-malformed-definition.test.ts': 'registers a policy in the process-wide registry',
  'tryout-cli-serve-refused-before-load.test.ts': 'sets and restores KVKIT_API_KEY',
  'selection-webgpu.test.ts': 'opens a WebGPU device (Dawn) in the process',
  'kernels-webgpu-rows.test.ts': 'opens a WebGPU device (Dawn) in the process',
  'kernels-webgpu-packed.test.ts': 'opens a WebGPU device (Dawn) in the process',
  'kv-float16-webgpu.test.ts': 'opens a WebGPU device (Dawn) in the process',
  'cli-bad-arguments-exit-2.test.ts': 'asks for a WebGPU backend in the process',
  // V8 reads the relaxed-SIMD flag at compile time, process-wide: a file that sets it would change the
  // builds of the files after it; and 'auto' measures relaxed against plain once a process
  'kernels-load.test.ts': 'sets V8\'s relaxed-SIMD flag, and needs the relaxed measurement not yet made',
  'wasm-load-bad-source.test.ts': 'sets V8\'s relaxed-SIMD flag, and needs the relaxed measurement not yet made',
  'packed-int.test.ts': 'sets V8\'s relaxed-SIMD flag (simdAndRelaxed)',
  'mpc-party-close.test.ts': 'counts the TCP sockets the process holds: another file\'s closing meanwhile would miscount',
  'razorattention-calibration-file-without-fs-typed.test.ts': 'mocks node-fs.js (vi.mock): in a shared fork the module an earlier file imported stays the real one',
}

/** test/NAME for every file that runs in a process of its own */
export const ISOLATED_FILES: readonly string[] = [...SLOW_FILES.map(([f]) => f).filter((f) => !SLOW_BUT_SHARED.has(f)), ...Object.keys(OWN_PROCESS)].map((f) => `test/${f}`)

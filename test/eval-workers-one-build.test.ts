import v8 from 'node:v8'
import { describe, expect, it, vi } from 'vitest'
import type { WasmBuild } from '../src/backend/wasm/load.js'

// evaluate's worker threads each load the model; with relaxed: 'auto' each would measure the two wasm
// builds for itself and, where they run about as fast (Bun, Deno, Node 22), some workers could run one
// build and some the other. The parent picks once (autoWasmBuild) and every worker loads that build:
// with the parent's pick forced either way, every row's kernels name that build.
let pick: WasmBuild = 'simd'
vi.mock('../src/backend/wasm/load.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/backend/wasm/load.js')>()
  return { ...real, autoWasmBuild: async () => pick }
})
const { evaluate } = await import('../src/eval/runner.js')
const { defaultModelDir } = await import('../src/eval/paths.js')

describe('the eval workers run the wasm build the parent chose', () => {
  for (const build of ['relaxed', 'simd'] as const) {
    it(`every worker runs the ${build} build when the parent's 'auto' picks it`, async () => {
      // relaxed SIMD on in every thread of this process (Node 20 keeps it behind a flag; workers share V8's flags)
      v8.setFlagsFromString('--experimental-wasm-relaxed-simd')
      pick = build
      const kernels: string[] = []
      await evaluate({
        model: defaultModelDir(), backend: 'wasm', policies: ['full'], tasks: ['passkey'], lengths: [256], samples: 4, seed: 2, workers: 2, threads: 1,
        onOutcome: (o) => kernels.push(o.kernels),
      })
      expect(kernels).toEqual(Array(4).fill(build === 'relaxed' ? 'wasm-relaxed-simd' : 'wasm-simd'))
    }, 120_000)
  }
})

/**
 * Does running samples in two worker threads pay? The same evaluation (full cache, passkey, 4 samples
 * of 2048 tokens) in-process and in two workers, wall time measured in the same run; the in-process
 * run is repeated after the workers so that a drift in machine load shows.
 *   npm run build && node dist/bench/eval.js
 */
import { evaluate } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

async function wall(workers: number): Promise<number> {
  const t0 = performance.now()
  await evaluate({ model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [2048], samples: 4, seed: 1, workers })
  return performance.now() - t0
}

export async function run(): Promise<void> {
  const one = await wall(1)
  const two = await wall(2)
  const oneAgain = await wall(1)
  const base = (one + oneAgain) / 2
  console.log(`eval, 4 samples x 2048 tokens: in-process ${(one / 1000).toFixed(1)} s and ${(oneAgain / 1000).toFixed(1)} s, two workers ${(two / 1000).toFixed(1)} s: speed-up x${(base / two).toFixed(2)}`)
}

if (import.meta.url === `file://${process.argv[1]}`) await run()

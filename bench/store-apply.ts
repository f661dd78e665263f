// apply()'s bookkeeping measured inside the call: the one-shot compaction of bench/store.ts (a random
// quarter of each head kept at 4k tokens, fixture shape) on a fresh cache each round, timed whole and
// less the compaction kernel calls it made (backend.compactRowsKV wrapped in a timer). The store bench's
// "bookkeeping" line is apply() less the kernel run alone on a twin cache, so it also carries the kernel's
// own swings between the two runs (caches warmer or colder); this figure has only what apply() adds.
//   npm run build && KVKIT_THREADS=1 node dist/bench/store-apply.js [rounds = 40]
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { filledCache, oneShotHeads } from './store.js'

const MODEL = 'models/fixture-14m'

function stats(ms: number[]): string {
  const s = ms.slice().sort((a, b) => a - b)
  return `min ${s[0].toFixed(3)} ms, median ${s[s.length >> 1].toFixed(3)} ms`
}

export async function run(rounds = 40): Promise<void> {
  if (!Number.isInteger(rounds) || rounds < 9) throw new Error(`store-apply bench: rounds must be a whole number >= 9, got ${rounds}`)
  const model = (await loadModel(MODEL, { backend: 'wasm' })) as LlamaModel
  const be = model.backend
  const kernel = be.compactRowsKV.bind(be)
  let inKernel = 0
  be.compactRowsKV = (...args: Parameters<typeof kernel>) => {
    const t = performance.now()
    try {
      return kernel(...args)
    } finally {
      inKernel += performance.now() - t
    }
  }
  const whole: number[] = []
  const outside: number[] = []
  try {
    for (let round = 0; round < rounds; round++) {
      const cache = filledCache(model, 4096)
      const heads = oneShotHeads(cache, 4096, round % 8)
      inKernel = 0
      const t0 = performance.now()
      cache.apply({ heads })
      const ms = performance.now() - t0
      whole.push(ms)
      outside.push(ms - inKernel)
      cache.dispose()
    }
  } finally {
    be.compactRowsKV = kernel
    model.dispose()
  }
  console.log(`one-shot compaction to 25% at 4k tokens, ${rounds} rounds, kernels ${model.kernels}`)
  console.log(`apply() whole, rounds 1-8 (the store bench's count)       ${stats(whole.slice(0, 8))}`)
  console.log(`apply() outside the kernel, rounds 1-8                    ${stats(outside.slice(0, 8))}`)
  console.log(`apply() outside the kernel, rounds 9-${rounds}                   ${stats(outside.slice(8))}`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await run(process.argv[2] ? Number(process.argv[2]) : undefined)
  // the threads build keeps workers alive: leave once the figures are out
  process.exit(0)
}

// Two sequences forked from one 4096-token prefix on the fixture model, in float32 and float16 KV: the
// prefix's pages are held once (PageStore.liveBytes against the two caches' own counts), and each fork
// decodes exactly as the sequence would alone (same greedy tokens, logits bit for bit: the forks read
// the very rows a lone prefill writes). "Alone" is a second prefill of the prefix, rolled back to the
// prefix between the two sequences. Exits 1 if a fork differs.
//   npm run build && node dist/bench/kv-fork.js [prefixTokens] [steps]
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import type { PagedKVCache } from '../src/cache/paged-cache.js'
import type { KVDtype } from '../src/cache/formats.js'
import { defaultModelDir } from '../src/eval/paths.js'

/** greedy decode of `steps` tokens from `first` after a prefix of `at` tokens; every step's logits */
function decode(model: LlamaModel, cache: PagedKVCache, at: number, first: number, steps: number): { ids: number[]; logits: Float32Array[] } {
  const ids: number[] = []
  const logits: Float32Array[] = []
  let token = first
  for (let s = 0; s < steps; s++) {
    const out = new Float32Array(model.config.vocab)
    model.forward.step([token], Int32Array.of(at + s), cache, { decode: true, logits: 'last', out })
    logits.push(out)
    token = out.indexOf(Math.max(...out))
    ids.push(token)
  }
  return { ids, logits }
}

const MiB = (x: number) => `${(x / 2 ** 20).toFixed(2)} MiB`

export async function run(prefixTokens = 4096, steps = 8): Promise<boolean> {
  let ok = true
  for (const kvDtype of ['float32', 'float16'] as KVDtype[]) {
    const model = (await loadModel(defaultModelDir(), { backend: 'wasm', kvDtype })) as LlamaModel
    const prefix = [0, ...Array.from({ length: prefixTokens - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
    const firsts = [11, 4242]
    const t0 = performance.now()
    const alone = model.newCache()
    model.prefill(prefix, alone)
    const solo = firsts.map((f) => {
      const r = decode(model, alone, prefixTokens, f, steps)
      alone.rollback(prefixTokens)
      return r
    })
    alone.dispose()
    const a = model.newCache()
    model.prefill(prefix, a)
    const prefixLive = a.store.liveBytes.wasm
    const prefixOwn = a.bytes().total
    const b = a.fork()
    const forked = [decode(model, a, prefixTokens, firsts[0], steps), decode(model, b, prefixTokens, firsts[1], steps)]
    const live = a.store.liveBytes.wasm
    const counted = a.bytes().total + b.bytes().total
    const shared = a.bytes().shared
    const same = forked.every((f, i) => f.ids.join() === solo[i].ids.join() && f.logits.every((l, s) => l.every((x, j) => Object.is(x, solo[i].logits[s][j]))))
    ok &&= same
    console.log(`\nfork at ${prefixTokens} tokens, ${kvDtype} KV (fixture model: ${model.config.layers} layers x ${model.config.kvHeads} KV heads x ${model.config.headDim}), ${steps} greedy steps each, ${((performance.now() - t0) / 1000).toFixed(0)} s`)
    console.log(`  prefix alone: ${MiB(prefixOwn)} of rows, ${MiB(prefixLive)} of pages in the store`)
    console.log(`  two forks after decoding: each counts ${MiB(a.bytes().total)} / ${MiB(b.bytes().total)} (sum ${MiB(counted)}); the store holds ${MiB(live)} = prefix pages + ${MiB(live - prefixLive)} (each side's copy of the shared partly filled last page, and new pages)`)
    console.log(`  shared bytes (counted once in the store): ${MiB(shared)} per fork; ${(live / counted).toFixed(3)} of what two private caches would hold`)
    console.log(`  each fork decodes as alone: ${same ? 'yes' : 'NO'} (tokens ${forked.map((f) => f.ids.join(',')).join(' | ')}; logits bit for bit)`)
    a.dispose()
    b.dispose()
    model.dispose()
  }
  return ok
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const ok = await run(process.argv[2] ? Number(process.argv[2]) : 4096, process.argv[3] ? Number(process.argv[3]) : 8)
  if (!ok) process.exitCode = 1
}

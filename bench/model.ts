// Runtime benchmarks on the fixture model: prefill and decode tokens/s at 1k, 4k and 16k context, and the
// matrix kernels' GFLOP/s against their plain TypeScript twins and a same-run peak estimate.
// Every ratio below is measured in this run (machines are noisy).
import { Bench } from 'tinybench'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'

const MODEL = 'models/fixture-14m'

/**
 * Fastest time per call in one tinybench run. On a shared machine preemption only ever adds time, so the
 * minimum is the estimate of the kernel's own speed (the median moved 3x between runs here).
 */
async function bestMs(name: string, fn: () => void, time: number, iterations = 3): Promise<number> {
  const bench = new Bench({ time, iterations, warmupIterations: 1, warmupTime: 0 })
  bench.add(name, fn)
  await bench.run()
  const r = bench.tasks[0].result
  if (r.state !== 'completed') throw new Error(`bench task ${name} did not complete: ${r.state}`)
  return r.latency.min
}

/**
 * time(a) / time(b), each the fastest of `rounds` calls made alternately (a, b, a, b ...), so both sides
 * see the same moments of a shared machine and preemption, which only adds time, drops out.
 */
function alternatingRatio(a: () => void, b: () => void, rounds = 25): number {
  let ta = Infinity
  let tb = Infinity
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now()
    a()
    const t1 = performance.now()
    b()
    const t2 = performance.now()
    ta = Math.min(ta, t1 - t0)
    tb = Math.min(tb, t2 - t1)
  }
  return ta / tb
}

const line = (what: string, value: string, extra = ''): void => console.log(`${what.padEnd(52)} ${value.padStart(16)}   ${extra}`)

function tokens(n: number): number[] {
  // a deterministic spread of ordinary tokens after <|endoftext|>
  return [0, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((i * 7919) % 4000))]
}

/** prefill n tokens into a fresh cache; then `steps` decode steps from it */
function prefillDecode(model: LlamaModel, n: number, steps: number): { prefillMs: number; decodeMs: number } {
  const cache = model.newCache()
  const ids = tokens(n + steps)
  const logits = new Float32Array(model.config.vocab)
  try {
    const t0 = performance.now()
    model.prefill(ids.slice(0, n), cache)
    const t1 = performance.now()
    for (let s = 0; s < steps; s++) {
      model.forward.step([ids[n + s]], Int32Array.of(n + s), cache, { decode: true, logits: 'last', out: logits })
    }
    const t2 = performance.now()
    return { prefillMs: t1 - t0, decodeMs: (t2 - t1) / steps }
  } finally {
    cache.dispose()
  }
}

async function endToEnd(model: LlamaModel): Promise<void> {
  console.log(`\nprefill (chunks of ${model.forward.chunk}) and decode on fixture-14m, wasm build '${(model.backend as CreatedBackend).build}'`)
  for (const n of [1024, 4096, 16384]) {
    // 16k runs once: its prefill alone takes minutes on 2 cores
    const runs = n >= 16384 ? 1 : 2
    let best = { prefillMs: Infinity, decodeMs: Infinity }
    for (let r = 0; r < runs; r++) {
      const x = prefillDecode(model, n, 16)
      best = { prefillMs: Math.min(best.prefillMs, x.prefillMs), decodeMs: Math.min(best.decodeMs, x.decodeMs) }
    }
    line(`prefill ${n} tokens`, `${((n / best.prefillMs) * 1000).toFixed(0)} tok/s`, `${(best.prefillMs / 1000).toFixed(2)} s`)
    line(`decode at ${n} context`, `${(1000 / best.decodeMs).toFixed(1)} tok/s`, `${best.decodeMs.toFixed(1)} ms/token`)
  }
}

async function kernels(wasm: CreatedBackend, ref: CreatedBackend): Promise<void> {
  const heap = wasm.heap
  const T = 128, inDim = 384, outDim = 1024
  const x = heap.alloc(T * inDim * 4), w = heap.alloc(outDim * inDim * 4), y = heap.alloc(T * outDim * 4)
  const F = heap.F32
  for (let i = 0; i < T * inDim; i++) F[(x >> 2) + i] = Math.sin(i)
  for (let i = 0; i < outDim * inDim; i++) F[(w >> 2) + i] = Math.cos(i) * 0.05
  const flops = 2 * T * inDim * outDim
  const ITERS = 2_000_000
  const peakFlops = ITERS * 96
  // warm both tiers of the engine before timing
  for (let i = 0; i < 20; i++) wasm.fmaPeak(1000)
  const tWasm = await bestMs('matmul wasm', () => wasm.matmul(x, w, 0, y, T, inDim, outDim), 1500, 10)
  const tRef = await bestMs('matmul reference', () => ref.matmul(x, w, 0, y, 8, inDim, outDim), 1500, 3)
  const tPeak = await bestMs('fma peak', () => void wasm.fmaPeak(ITERS), 1000, 10)
  const gWasm = flops / tWasm / 1e6
  const gRef = (2 * 8 * inDim * outDim) / tRef / 1e6
  const gPeak = peakFlops / tPeak / 1e6
  // same-moment ratio: matmul time over the time of the same flop count of register-only multiply-adds
  const peakItersForMatmul = Math.round(flops / 96)
  const ofPeak = 1 / alternatingRatio(() => wasm.matmul(x, w, 0, y, T, inDim, outDim), () => void wasm.fmaPeak(peakItersForMatmul))
  console.log(`\nmatrix kernels: linear layer of ${T} tokens, ${inDim} -> ${outDim}`)
  line('matmul, wasm SIMD (4x2 register blocks)', `${gWasm.toFixed(1)} GFLOP/s`, `x${(gWasm / gRef).toFixed(0)} the TypeScript twin, ${(ofPeak * 100).toFixed(0)}% of peak (alternating)`)
  line('matmul, plain TypeScript twin', `${gRef.toFixed(2)} GFLOP/s`)
  line('peak estimate: register-only multiply-adds', `${gPeak.toFixed(1)} GFLOP/s`)
  for (const p of [x, w, y]) heap.release(p)

  // causal chunk attention: 128 tokens x 3 heads over 4096 cached keys, head_dim 64
  const n = 4096, d = 64, hq = 3, pt = 64
  const table = heap.alloc((n / pt) * 4)
  const pages: number[] = []
  for (let p = 0; p < n / pt; p++) {
    const page = heap.alloc(pt * d * 4)
    pages.push(page)
    for (let i = 0; i < pt * d; i++) heap.F32[(page >> 2) + i] = Math.sin(p * 131 + i)
    heap.I32[(table >> 2) + p] = page
  }
  const q = heap.alloc(T * hq * d * 4), out = heap.alloc(T * hq * d * 4), lse = heap.alloc(T * hq * 4), scratch = heap.alloc((256 + T * hq * (d + 2)) * 4)
  for (let i = 0; i < T * hq * d; i++) heap.F32[(q >> 2) + i] = Math.cos(i) * 0.5
  const aw = await bestMs('attend wasm', () => wasm.attendCausal(q, hq * d, hq, T, d, d, table, table, pt, n, n - T + 1, 0.125, out, hq * d, lse, scratch), 1500, 10)
  // the twin on 4 of the 128 tokens (it is slow); flops scale with the rows
  const ar = await bestMs('attend reference', () => ref.attendCausal(q, hq * d, hq, 4, d, d, table, table, pt, n, n - 3, 0.125, out, hq * d, lse, scratch), 1000, 3)
  const aFlops = (rows: number) => rows * hq * (n - rows / 2) * d * 4
  const ga = aFlops(T) / aw / 1e6, gr = aFlops(4) / ar / 1e6
  // causal: the chunk's rows see n - T + 1 .. n keys, so the flops above count (n - T/2) keys a row on average
  const attend = () => wasm.attendCausal(q, hq * d, hq, T, d, d, table, table, pt, n, n - T + 1, 0.125, out, hq * d, lse, scratch)
  const aOfPeak = 1 / alternatingRatio(attend, () => void wasm.fmaPeak(Math.round(aFlops(T) / 96)))
  line(`attendCausal, wasm (${T} tokens x ${hq} heads over ${n})`, `${ga.toFixed(1)} GFLOP/s`, `x${(ga / gr).toFixed(0)} the TypeScript twin, ${(aOfPeak * 100).toFixed(0)}% of peak (alternating)`)
  line('attendCausal, plain TypeScript twin', `${gr.toFixed(2)} GFLOP/s`)
  for (const p of [table, q, out, lse, scratch, ...pages]) heap.release(p)
}

export async function run(): Promise<void> {
  const wasm = await createBackend('wasm')
  const ref = await createBackend('reference', { heap: wasm.heap })
  await kernels(wasm, ref)
  const model = await loadModel(MODEL, { backendInstance: wasm })
  try {
    line('weights in the arena (float32)', `${(model.weightBytes / 2 ** 20).toFixed(1)} MiB`, '(float16 on disk: half that)')
    await endToEnd(model)
  } finally {
    model.dispose()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run()

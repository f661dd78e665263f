// KIVI's packing at prefill end (issue: the packing was seconds of compressMs at 16k tokens): the
// compute core's packing kernels (assembly/kernels/packed-quantize.ts) against their TypeScript twins
// (src/cache/packing.ts, the store's path before them) and against memory.copy of the same float bytes,
// in one run, on a fixture-shaped cache: 8 layers x 2 KV heads of 64 channels, n tokens (16k default),
// keys in token groups of 32 per channel, values in channel groups of 32 per token. The kernel's bytes
// are checked equal to the twin's first. Then the store's whole quantize step (cache.apply) with and
// without the kernels.
//   npm run build:ts && node dist/bench/kivi-pack.js [--tokens 16384] [--rounds 5] [--json FILE]
import { writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { createBackend, type CreatedBackend } from '../src/backend/index.js'
import { referencePackKernels, type PackKernels } from '../src/backend/reference/pack-kernels.js'
import { packedLayout, type PageFormat } from '../src/cache/formats.js'
import { PagedKVCache } from '../src/cache/paged-cache.js'
import { arg, median } from './reuse-common.js'

const LAYERS = 8
const KV_HEADS = 2
const D = 64
const PT = 64
const GROUP = 32

/** every head's key and value rows [n][D] in the arena (random in [-1, 1), seeded), and zeroed pages */
function setup(b: CreatedBackend, n: number, format: PageFormat) {
  const heap = b.heap
  const heads = LAYERS * KV_HEADS
  const kLay = packedLayout(format, 'key', PT, D, GROUP)
  const vLay = packedLayout(format, 'value', PT, D, GROUP)
  const pages = Math.ceil(n / PT)
  const alloc = (bytes: number) => heap.alloc(bytes)
  const streams = Array.from({ length: heads }, () => {
    const k = alloc(n * D * 4)
    const v = alloc(n * D * 4)
    const kPages = Array.from({ length: pages }, () => alloc(kLay.bytes))
    const vPages = Array.from({ length: pages }, () => alloc(vLay.bytes))
    const kTab = alloc(pages * 4)
    const vTab = alloc(pages * 4)
    return { k, v, kPages, vPages, kTab, vTab }
  })
  const copyDst = alloc(n * D * 4 * 2)
  let s = 12345
  const F = heap.F32
  for (const st of streams) {
    for (const p of [st.k, st.v]) for (let i = 0; i < n * D; i++) F[(p >> 2) + i] = (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 31 - 1
    heap.I32.set(st.kPages, st.kTab >> 2)
    heap.I32.set(st.vPages, st.vTab >> 2)
  }
  const zero = () => {
    const U8 = heap.U8
    for (const st of streams) {
      for (const p of st.kPages) U8.fill(0, p, p + kLay.bytes)
      for (const p of st.vPages) U8.fill(0, p, p + vLay.bytes)
    }
  }
  const bits = format === 'int8' ? 8 : format === 'int4' ? 4 : format === 'int2' ? 2 : 1
  const pack = (k: PackKernels) => {
    for (const st of streams) {
      k.packKeys(st.k, n, D, st.kTab, PT, 0, bits, GROUP)
      k.packValues(st.v, n, D, st.vTab, PT, 0, bits, GROUP)
    }
  }
  const copy = () => {
    // the same float bytes (keys then values of each head) through memory.copy
    for (const st of streams) {
      b.copyBytes(copyDst, st.k, n * D * 4)
      b.copyBytes(copyDst + n * D * 4, st.v, n * D * 4)
    }
  }
  const snapshot = () => streams.flatMap((st) => [...st.kPages.map((p) => heap.U8.slice(p, p + kLay.bytes)), ...st.vPages.map((p) => heap.U8.slice(p, p + vLay.bytes))])
  return { zero, pack, copy, snapshot }
}

/** wall ms of fn (run after `before`, which is not timed) */
function timed(before: () => void, fn: () => void): number {
  before()
  const t0 = performance.now()
  fn()
  return performance.now() - t0
}

/** ms of the store's quantize step over a fixture-shaped cache of n float32 tokens (every head, all slots) */
function storeApplyMs(b: CreatedBackend, n: number, format: PageFormat): number {
  const cache = new PagedKVCache(b, { layers: LAYERS, kvHeads: KV_HEADS, headDim: D, pageTokens: PT })
  let s = 777
  for (let l = 0; l < LAYERS; l++) {
    for (let at = 0; at < n; at += 4096) {
      const T = Math.min(4096, n - at)
      const k = Float32Array.from({ length: T * D * KV_HEADS }, () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 31 - 1)
      const v = Float32Array.from({ length: T * D * KV_HEADS }, () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 31 - 1)
      cache.append(l, k, v, Int32Array.from({ length: T }, (_, i) => at + i))
    }
  }
  const quantize = Array.from({ length: LAYERS * KV_HEADS }, (_, i) => ({ layer: Math.floor(i / KV_HEADS), head: i % KV_HEADS, upto: n, keys: format, values: format }))
  const t0 = performance.now()
  cache.apply({ heads: [], quantize })
  const ms = performance.now() - t0
  cache.dispose()
  return ms
}

async function main(): Promise<void> {
  const n = Number(arg('tokens', '16384'))
  const rounds = Number(arg('rounds', '5'))
  const b = await createBackend('wasm', { relaxed: false })
  const twin = referencePackKernels(b.heap)
  const kernel = b as unknown as PackKernels
  const rows: Record<string, unknown>[] = []
  console.log(`KIVI packing, ${LAYERS} layers x ${KV_HEADS} KV heads x ${D} channels, ${n} tokens, groups of ${GROUP}; ${cpus()[0]?.model ?? '?'}, load ${loadavg()[0].toFixed(2)}`)
  for (const format of ['int2', 'int4'] as const) {
    const c = setup(b, n, format)
    // the kernel writes the twin's bytes (else the timing compares different work)
    c.zero()
    c.pack(twin)
    const want = c.snapshot()
    c.zero()
    c.pack(kernel)
    const got = c.snapshot()
    if (!want.every((p, i) => p.every((v, j) => v === got[i][j]))) throw new Error(`${format}: the kernel's pages differ from the twin's`)
    const t: Record<string, number[]> = { typescript: [], kernel: [], copy: [] }
    for (let r = 0; r < rounds; r++) {
      // alternating order, so background load falls on all three alike
      const order = r % 2 ? (['copy', 'kernel', 'typescript'] as const) : (['typescript', 'kernel', 'copy'] as const)
      for (const name of order) t[name].push(timed(c.zero, name === 'copy' ? c.copy : () => c.pack(name === 'kernel' ? kernel : twin)))
    }
    const ms = { typescript: median(t.typescript), kernel: median(t.kernel), copy: median(t.copy) }
    const floatBytes = LAYERS * KV_HEADS * n * D * 4 * 2
    console.log(
      `${format}: TypeScript ${ms.typescript.toFixed(1)} ms, kernel ${ms.kernel.toFixed(1)} ms (${(ms.typescript / ms.kernel).toFixed(1)}x faster, ${((floatBytes / ms.kernel) * 1e-6).toFixed(2)} GB/s of floats), memory.copy of the floats ${ms.copy.toFixed(1)} ms (kernel ${(ms.kernel / ms.copy).toFixed(1)}x copy)`,
    )
    rows.push({ format, tokens: n, rounds, ms, floatBytes })
  }
  // the store's whole quantize step: rows read out of the float pages, checked, packed, float pages compacted
  const noKernels = { ...b, packKeys: undefined, packSignKeys: undefined, packValues: undefined, firstUnpackable: undefined }
  for (const format of ['int2', 'int4'] as const) {
    const t = { kernel: [] as number[], typescript: [] as number[] }
    for (let r = 0; r < Math.max(1, Math.floor(rounds / 2)); r++) {
      t.kernel.push(storeApplyMs(b, n, format))
      t.typescript.push(storeApplyMs(noKernels, n, format))
    }
    const ms = { kernel: median(t.kernel), typescript: median(t.typescript) }
    console.log(`store apply(quantize) ${format}, every head: with the kernels ${ms.kernel.toFixed(1)} ms, TypeScript packing ${ms.typescript.toFixed(1)} ms`)
    rows.push({ format, tokens: n, store: true, ms })
  }
  const json = arg('json', '')
  if (json) writeFileSync(json, JSON.stringify({ cpu: cpus()[0]?.model, rows }, null, 2))
}

await main()

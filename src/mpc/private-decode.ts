/**
 * A private decode step of a kvkit Llama model: the attention over the KV cache runs on secret shares
 * between the two parties; everything else of the layer runs in the clear on the client.
 *
 * Secret-shared (never reconstructed by either party): every cached key and value (the prompt's, split
 * into shares after a cleartext prefill, and each new token's), the decode query, the attention logits,
 * softmax, MPCache's summaries and scores, and the attention output until it is handed back.
 * Plaintext (the client's): token embedding, RMSNorm, the Q/K/V/O projections, RoPE, the MLP, the LM
 * head and sampling; the prefill itself. Opened on purpose: the attention output of each layer (to the
 * client, who needs it for the output projection) and MPCache's selected positions (see mpcache.ts).
 * In this prototype the client and both parties live in one process (in-process transport).
 */
import type { LlamaModel } from '../model/model.js'
import type { PagedKVCache } from '../cache/paged-cache.js'
import { attendShares, gatherRows } from './attention.js'
import { decodeFixed, encodeFixed } from './engine.js'
import { mpcacheSelect, mpcacheSummaries, type HeadSummaries } from './mpcache.js'
import type { Party } from './party.js'
import type { ChaCha20Prg } from './prg.js'
import { concatWords, type Ring, type Words } from './ring.js'
import { runBoth, splitSecret } from './session.js'

export type PrivateAttention = 'full' | 'mpcache'

/** Both parties' shares of the cache: [party][layer][kvHead] keys and values, [n][d] each. */
export class SharedCache {
  keys: Words[][][] = [[], []]
  values: Words[][][] = [[], []]
  n = 0
  summaries: HeadSummaries[][][] = [[], []]
  summarizedClusters = 0

  /** Splits a cleartext cache into shares (the client does this once after prefill, then drops it). */
  static fromCache(cache: PagedKVCache, layers: number, kvHeads: number, ring: Ring, prg: ChaCha20Prg): SharedCache {
    const s = new SharedCache()
    for (let l = 0; l < layers; l++) {
      for (const p of [0, 1]) {
        s.keys[p].push([])
        s.values[p].push([])
      }
      for (let h = 0; h < kvHeads; h++) {
        const [k0, k1] = splitSecret(encodeFixed(cache.readKeys(l, h), 18), prg, ring)
        const [v0, v1] = splitSecret(encodeFixed(cache.readValues(l, h), 18), prg, ring)
        s.keys[0][l].push(k0); s.keys[1][l].push(k1)
        s.values[0][l].push(v0); s.values[1][l].push(v1)
      }
    }
    s.n = cache.length(0, 0)
    return s
  }
}

/** MPCache's summaries of the shared prompt cache (the one-off prefill part), for the even layers. */
export async function summarizeSharedCache(parties: [Party, Party], cache: SharedCache, layers: number, d: number): Promise<void> {
  for (let l = 0; l < layers; l += 2) {
    await runBoth(parties, async (party) => {
      cache.summaries[party.id][l] = await mpcacheSummaries(party, cache.keys[party.id][l], cache.n, d)
    })
  }
  cache.summarizedClusters = Math.floor(cache.n / 32)
}

export interface PrivateStepContext {
  model: LlamaModel
  parties: [Party, Party]
  ring: Ring
  /** the client's randomness for sharing its inputs */
  prg: ChaCha20Prg
  cache: SharedCache
  method: PrivateAttention
}

/** One token through the model with private attention; returns the logits [vocab]. */
export async function privateDecodeStep(ctx: PrivateStepContext, token: number, position: number): Promise<Float32Array> {
  const { model, parties, ring, prg, cache } = ctx
  const { hidden: H, intermediate: I, qHeads, kvHeads, headDim: d, rmsNormEps: eps, layers, vocab } = model.config
  const fw = model.forward
  const k = fw.backend
  const heap = k.heap
  const sizes = { x: H, xn: H, q: qHeads * d, kk: kvHeads * d, v: kvHeads * d, att: qHeads * d, o: H, gate: I, up: I, logits: vocab }
  const p = Object.fromEntries(Object.entries(sizes).map(([name, n]) => [name, heap.alloc(n * 4)])) as Record<keyof typeof sizes, number>
  const f32 = (ptr: number, n: number): Float32Array => heap.F32.slice(ptr >> 2, (ptr >> 2) + n)
  try {
    heap.F32.copyWithin(p.x >> 2, (fw.w.embed >> 2) + token * H, (fw.w.embed >> 2) + (token + 1) * H)
    const selection: Int32Array[][] = [[], []]
    for (let l = 0; l < layers; l++) {
      const w = fw.w.layers[l]
      k.rmsnorm(p.x, w.inputNorm, p.xn, 1, H, eps)
      k.matmul(p.xn, w.q, w.qBias, p.q, 1, H, qHeads * d)
      k.matmul(p.xn, w.k, w.kBias, p.kk, 1, H, kvHeads * d)
      k.matmul(p.xn, w.v, w.vBias, p.v, 1, H, kvHeads * d)
      fw.rope.rotate(p.q, 1, qHeads, [position])
      fw.rope.rotate(p.kk, 1, kvHeads, [position])
      // the client shares q and the new token's key and value; the parties append them to their caches
      const q = splitSecret(encodeFixed(f32(p.q, qHeads * d), 18), prg, ring)
      const kNew = splitSecret(encodeFixed(f32(p.kk, kvHeads * d), 18), prg, ring)
      const vNew = splitSecret(encodeFixed(f32(p.v, kvHeads * d), 18), prg, ring)
      for (const id of [0, 1] as const) {
        for (let h = 0; h < kvHeads; h++) {
          cache.keys[id][l][h] = concatWords(cache.keys[id][l][h], kNew[id].subarray(h * d, (h + 1) * d))
          cache.values[id][l][h] = concatWords(cache.values[id][l][h], vNew[id].subarray(h * d, (h + 1) * d))
        }
      }
      const n = cache.n + 1
      const group = qHeads / kvHeads
      const [a0, a1] = await runBoth(parties, async (party) => {
        const keys = cache.keys[party.id][l]
        const values = cache.values[party.id][l]
        if (ctx.method === 'full') {
          const heads = Array.from({ length: qHeads }, (_, h) => ({ keys: keys[Math.floor(h / group)], values: values[Math.floor(h / group)] }))
          return attendShares(party, q[party.id], heads, n, d)
        }
        if (l % 2 === 0) {
          // index sharing: odd layers reuse the even layer's selection; a newly completed cluster is summarised first
          if (Math.floor(n / 32) !== cache.summarizedClusters) cache.summaries[party.id][l] = await mpcacheSummaries(party, keys, n, d)
          selection[party.id] = await mpcacheSelect(party, q[party.id], cache.summaries[party.id][l], n, d)
        }
        const sel = selection[party.id]
        const heads = sel.map((idx, h) => ({ keys: gatherRows(keys[Math.floor(h / group)], idx, d), values: gatherRows(values[Math.floor(h / group)], idx, d) }))
        return attendShares(party, q[party.id], heads, sel[0].length, d)
      })
      // the attention output is handed back to the client
      heap.F32.set(decodeFixed(ring.add(a0, a1), 18), p.att >> 2)
      k.matmul(p.att, w.o, w.oBias, p.o, 1, qHeads * d, H)
      k.addInPlace(p.x, p.o, H)
      k.rmsnorm(p.x, w.postNorm, p.xn, 1, H, eps)
      k.matmul(p.xn, w.gate, w.gateBias, p.gate, 1, H, I)
      k.matmul(p.xn, w.up, w.upBias, p.up, 1, H, I)
      k.swiglu(p.gate, p.up, p.gate, I)
      k.matmul(p.gate, w.down, w.downBias, p.o, 1, I, H)
      k.addInPlace(p.x, p.o, H)
    }
    cache.n++
    if (ctx.method === 'mpcache') cache.summarizedClusters = Math.floor(cache.n / 32)
    k.rmsnorm(p.x, fw.w.norm, p.xn, 1, H, eps)
    k.matmul(p.xn, fw.w.lmHead, 0, p.logits, 1, H, vocab)
    return f32(p.logits, vocab)
  } finally {
    for (const ptr of Object.values(p)) heap.release(ptr)
  }
}

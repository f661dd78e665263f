/**
 * RazorAttention (calibration finds the induction and echo heads of a handcrafted attention setting;
 * compression against a plain reference) and TRIM-KV (hand-made gate files, decisions against a plain
 * computation, periodic eviction).
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { calibrateRazorAttention, createRazorAttention, retrievalHeads, type CalibrationModel } from '../src/policies/razorattention.js'
import { createTrimKV } from '../src/policies/trimkv.js'
import { parseGatesSafetensors, readGatesFile } from '../src/policies/trimkv-gates.js'
import { lagScores } from '../src/policies/lag-score.js'
import { createPolicy } from '../src/policies/registry.js'
import type { LayerHooks, ModelShape, Policy } from '../src/policies/types.js'
import { newCache, ops, randArray, randomContext, rng, shape } from './policy-context-helpers.js'

describe('RazorAttention calibration', () => {
  /**
   * A handcrafted two-layer attention setting with the mechanisms a real model learns, written straight
   * into keys and queries (a transformer would build them through its residual stream):
   *  - layer 1, KV head 0 is an induction head for its first query head: the key of token j carries the
   *    embedding of the token before it (what a previous-token head writes), the query of token i carries
   *    token i's own embedding, so token i attends to the token after the earlier occurrence of itself;
   *    the group's second query head is random (GQA: the KV head still counts as retrieval);
   *  - layer 0, KV head 1 is an echo head: keys and queries both carry the token's own embedding;
   *  - every other head has random keys and queries.
   * The calibration runs through its real path: `generate` with its probe policy, hooks, ops and softmax.
   */
  const m: ModelShape = shape(2, 4, 2, 32)
  const vocab = 1000
  function handcraftedModel(): CalibrationModel & { calls: number } {
    const r = rng(5)
    const emb = Array.from({ length: vocab }, () => {
      const e = randArray(r, m.headDim)
      const norm = Math.hypot(...e)
      return e.map((x) => x / norm)
    })
    const model = {
      calls: 0,
      config: { ...m, vocab, bosTokenId: 0 as number | null },
      generate(prompt: number[], o: { maxNewTokens: number; policy: Policy }) {
        model.calls++
        // like the runtime: everything but the last prompt token is prefilled before the policy runs
        const n = prompt.length - 1
        const w = o.policy.needs.observationWindow!
        const cache = newCache(m)
        const hooks: LayerHooks[] = []
        const d = m.headDim
        for (let l = 0; l < m.layers; l++) {
          const k = new Float32Array(n * m.kvHeads * d)
          const q = new Float32Array(m.qHeads * w * d)
          for (let kv = 0; kv < m.kvHeads; kv++) {
            const role = l === 1 && kv === 0 ? 'induction' : l === 0 && kv === 1 ? 'echo' : 'random'
            for (let j = 0; j < n; j++) {
              const src = role === 'induction' ? emb[prompt[Math.max(0, j - 1)]] : role === 'echo' ? emb[prompt[j]] : randArray(r, d)
              k.set(src, (j * m.kvHeads + kv) * d)
            }
            for (let g = 0; g < m.group; g++) {
              const qh = kv * m.group + g
              for (let i = 0; i < w; i++) {
                const tok = prompt[n - w + i]
                const src = role !== 'random' && g === 0 ? emb[tok].map((x) => 40 * x) : role === 'echo' ? emb[tok].map((x) => 40 * x) : randArray(r, d)
                q.set(src, (qh * w + i) * d)
              }
            }
          }
          cache.append(l, k, randArray(r, n * m.kvHeads * d), Int32Array.from({ length: n }, (_, i) => i))
          hooks.push({ layer: l, observationQueries: q, observationPositions: Int32Array.from({ length: w }, (_, i) => n - w + i) })
        }
        o.policy.start().onPrefillEnd?.({ cache, ops, model: m, hooks, promptLength: n, step: 0 })
        cache.dispose()
        return { result: Promise.resolve({}) }
      },
    }
    return model
  }

  it('finds the induction head and the echo head, per KV head under GQA', async () => {
    const model = handcraftedModel()
    const scores = await calibrateRazorAttention(model, { length: 48, seed: 3 })
    // query head 0 of layer 1 (KV head 0) is the induction head
    const ind = Array.from(scores.induction)
    expect(ind.indexOf(Math.max(...ind))).toBe(1 * m.qHeads + 0)
    expect(ind[4]).toBeGreaterThan(0.5)
    const echo = Array.from(scores.echo)
    expect(echo.indexOf(Math.max(...echo))).toBeOneOf([2, 3])
    // 4 KV heads: round(0.14 x 4) = 1 induction + 1 echo
    expect(retrievalHeads(scores, m)).toEqual([[0, 1], [1, 0]])
    const policy = createRazorAttention({ budget: 0.5 })
    expect(await policy.calibrate(model, { length: 48, seed: 3 })).toEqual([[0, 1], [1, 0]])
    // calibration ran once for this model and these options
    expect(model.calls).toBe(1)
    // a given block to repeat finds the same heads
    const block = Array.from({ length: 40 }, (_, i) => 20 + ((i * 37) % 900))
    expect(retrievalHeads(await calibrateRazorAttention(model, { tokens: block }), m)).toEqual([[0, 1], [1, 0]])
    expect(model.calls).toBe(2)
    await expect(calibrateRazorAttention(model, { tokens: [1, 5000] })).rejects.toThrow(/tokens must be ids in \[0, 1000\)/)
  })

  it('refuses to run without retrieval heads, naming the fix', () => {
    const { ctx } = randomContext(1, m, 20, 4)
    expect(() => createRazorAttention({}).start().onPrefillEnd!(ctx)).toThrow(/calibrate\(model\)|heads=/)
  })
})

describe('RazorAttention compression', () => {
  it('retrieval heads keep everything; the others keep sinks + window + the mean of the dropped tokens', () => {
    const m = shape(2, 4, 2, 8)
    const n = 80
    const { ctx, cache } = randomContext(61, m, n, 4)
    const p = createPolicy('razorattention:budget=0.5,heads=0.1', m)!.start()
    const dec = p.onPrefillEnd!(ctx)!
    // reference: 4 heads, 1 whole: (40 x 4 - 80) / 3 = 26 tokens each, minus 4 sinks and 1 compensation token
    const win = Math.floor((40 * 4 - 80) / 3) - 4 - 1
    expect(dec.heads.map((h) => [h.layer, h.head])).toEqual([[0, 0], [1, 0], [1, 1]])
    for (const hd of dec.heads) {
      expect(Array.from(hd.keep)).toEqual([0, 1, 2, 3, ...Array.from({ length: win }, (_, i) => n - win + i)])
      const keys = cache.readKeys(hd.layer, hd.head)
      const values = cache.readValues(hd.layer, hd.head)
      const e = hd.extra![0]
      for (let c = 0; c < 8; c++) {
        let ks = 0, vs = 0
        for (let i = 4; i < n - win; i++) {
          ks += keys[i * 8 + c]
          vs += values[i * 8 + c]
        }
        expect(e.key[c]).toBeCloseTo(ks / (n - win - 4), 5)
        expect(e.value[c]).toBeCloseTo(vs / (n - win - 4), 5)
      }
    }
    cache.apply(dec)
    expect(cache.length(0, 1)).toBe(n)
    expect(cache.length(0, 0)).toBe(4 + win + 1)
    // the budget holds on average over the heads
    expect((n + 3 * (4 + win + 1)) / 4).toBeLessThanOrEqual(40)
  })
})

describe('TRIM-KV', () => {
  const m = shape(2, 4, 2, 8)
  const H = 6
  function handGates(r: () => number) {
    return Array.from({ length: m.layers }, () => ({
      weight: Array.from({ length: m.kvHeads }, () => Array.from({ length: H }, () => r() - 0.5)),
      bias: Array.from({ length: m.kvHeads }, () => r() - 0.5),
    }))
  }
  function writeJSON(layers: ReturnType<typeof handGates>): string {
    const dir = mkdtempSync(join(tmpdir(), 'trimkv-'))
    const path = join(dir, 'gates.json')
    writeFileSync(path, JSON.stringify({ format: 'trimkv-gates', hidden: H, kvHeads: m.kvHeads, layers }))
    return path
  }
  /** plain: beta = sigmoid(w . h + b); score = (t - pos) log beta; keep the top M */
  function refKeep(layers: ReturnType<typeof handGates>, hs: Float32Array, l: number, h: number, pos: number[], t: number, M: number): number[] {
    const score = pos.map((p, i) => {
      const z = layers[l].bias[h] + layers[l].weight[h].reduce((s, w, c) => s + w * hs[i * H + c], 0)
      return (t - p) * Math.log(1 / (1 + Math.exp(-z)))
    })
    return score.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, M).map((x) => x[1]).sort((a, b) => a - b)
  }

  it('loads a hand-made JSON gate file and keeps the top M by (t - pos) log beta, per KV head', () => {
    const r = rng(71)
    const layers = handGates(r)
    const n = 40
    const hs = Array.from({ length: m.layers }, () => randArray(r, n * H, 2))
    const { ctx } = randomContext(72, m, n, 4, (l) => ({ hiddenStates: hs[l] }))
    const p = createPolicy(`trimkv:budget=0.5,gatesFile=${writeJSON(layers)}`, m)!.start()
    const dec = p.onPrefillEnd!(ctx)!
    for (const hd of dec.heads) {
      expect(Array.from(hd.keep)).toEqual(refKeep(layers, hs[hd.layer], hd.layer, hd.head, Array.from({ length: n }, (_, i) => i), n, 20))
    }
  })

  it('reads the same gates from safetensors (F32 and F16)', () => {
    const r = rng(73)
    const layers = handGates(r)
    const tensors: Record<string, { shape: number[]; data: number[] }> = {}
    layers.forEach((L, l) => {
      tensors[`gates.${l}.weight`] = { shape: [m.kvHeads, H], data: L.weight.flat() }
      tensors[`gates.${l}.bias`] = { shape: [m.kvHeads], data: L.bias }
    })
    for (const dtype of ['F32', 'F16'] as const) {
      const g = parseGatesSafetensors(safetensors(tensors, dtype))
      expect(g.hidden).toBe(H)
      expect(g.kvHeads).toBe(m.kvHeads)
      g.layers.forEach((L, l) => {
        Array.from(L.weight).forEach((x, i) => expect(x).toBeCloseTo(layers[l].weight.flat()[i], dtype === 'F32' ? 6 : 3))
        Array.from(L.bias).forEach((x, i) => expect(x).toBeCloseTo(layers[l].bias[i], dtype === 'F32' ? 6 : 3))
      })
    }
  })

  it('evicts the old tokens of low retention first, and recent ones only later', () => {
    // beta from the sign of h[0]: tokens with h0 = -4 forget fast (beta ~ 0.02), h0 = +4 keep (beta ~ 0.98)
    const layers = Array.from({ length: m.layers }, () => ({ weight: Array.from({ length: m.kvHeads }, () => [1, 0, 0, 0, 0, 0]), bias: [0, 0] }))
    const n = 32
    const low = (i: number) => i % 4 === 1
    const hs = new Float32Array(n * H)
    for (let i = 0; i < n; i++) hs[i * H] = low(i) ? -4 : 4
    const { ctx } = randomContext(74, m, n, 4, () => ({ hiddenStates: hs }))
    const dec = createTrimKV({ gates: readGatesFile(writeJSON(layers)), tokens: 28 }).start().onPrefillEnd!(ctx)!
    // 8 low-retention tokens, 4 must go: the 4 oldest of them
    for (const hd of dec.heads) expect(Array.from({ length: n }, (_, i) => i).filter((i) => !hd.keep.includes(i))).toEqual([1, 5, 9, 13])
  })

  it('UnionKV with gatesFile: its agnostic share is each head\'s top by (n - pos) log beta, the window kept, the rest by the votes', () => {
    const r = rng(81)
    const layers = handGates(r)
    const n = 48
    const w = 4
    const hs = Array.from({ length: m.layers }, () => randArray(r, n * H, 2))
    const { ctx } = randomContext(82, m, n, w, (l) => ({ hiddenStates: hs[l] }))
    const C = 16
    // agnostic=1: the whole budget by retention, the observation window (the last w) forced in first
    const dec = createPolicy(`unionkv:tokens=${C},window=${w},agnostic=1,gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    const positions = Array.from({ length: n }, (_, i) => i)
    for (const hd of dec.heads) {
      const rest = refKeep(layers, hs[hd.layer], hd.layer, hd.head, positions.slice(0, n - w), n, C - w)
      expect(Array.from(hd.keep)).toEqual([...rest, ...positions.slice(n - w)])
    }
    // half the budget by retention: those tokens are kept, and the head still holds exactly C
    const half = createPolicy(`unionkv:tokens=${C},window=${w},agnostic=0.5,gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    for (const hd of half.heads) {
      expect(hd.keep.length).toBe(C)
      for (const i of refKeep(layers, hs[hd.layer], hd.layer, hd.head, positions.slice(0, n - w), n, C / 2 - w)) expect(Array.from(hd.keep)).toContain(i)
    }
  })

  /** 48 tokens of random keys, values and hidden states, hand-made gates; a 4-token window, LagKV partitions of 8, 16 kept */
  function gatesWorld(seed: number) {
    const r = rng(seed)
    const layers = handGates(r)
    const n = 48
    const w = 4
    const hs = Array.from({ length: m.layers }, () => randArray(r, n * H, 2))
    const { ctx } = randomContext(seed + 1, m, n, w, (l) => ({ hiddenStates: hs[l] }))
    return { layers, hs, ctx, n, w, lag: 8, C: 16 }
  }

  it('UnionKV with gatesFile and lagShare: after the gates\' share each head takes LagKV\'s top of the rest, the window kept', () => {
    const { layers, hs, ctx, n, w, lag, C } = gatesWorld(85)
    // agnostic + lagShare = 1: the whole budget is the window, the gates' top, then LagKV's top of what is left
    const dec = createPolicy(`unionkv:tokens=${C},window=${w},agnostic=0.5,lagShare=0.5,lag=${lag},gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    const positions = Array.from({ length: n }, (_, i) => i)
    for (const hd of dec.heads) {
      const byGates = refKeep(layers, hs[hd.layer], hd.layer, hd.head, positions.slice(0, n - w), n, C / 2 - w)
      const lagScore = lagScores(ctx.cache.readKeys(hd.layer, hd.head), ctx.cache.readValues(hd.layer, hd.head), n, m.headDim, lag, 0, -Infinity)
      const taken = new Set([...byGates, ...positions.slice(n - w)])
      const byLag = positions.filter((i) => !taken.has(i) && lagScore[i] > -Infinity).sort((a, b) => lagScore[b] - lagScore[a] || a - b).slice(0, C / 2)
      expect(Array.from(hd.keep)).toEqual([...taken, ...byLag].sort((a, b) => a - b))
    }
    expect(() => createPolicy('unionkv:lagShare=0.25,agnosticScore=lag', m)).toThrow(/lagShare=0.25 needs gatesFile/)
  })

  it('UnionKV with gatesFile and the question after: LagKV\'s floor first (its tail latest first), then the gates\' top of the rest, the window kept', () => {
    const { layers, hs, ctx, n, w, lag, C } = gatesWorld(87)
    ctx.promptAfter = 6
    // afterFloor 0.25: LagKV takes 0.25 x 48 = 12 of the 16 slots (above agnostic's 8), the gates the other 4
    const dec = createPolicy(`unionkv:tokens=${C},window=${w},lag=${lag},afterFloor=0.25,gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    const positions = Array.from({ length: n }, (_, i) => i)
    const top = (score: (i: number) => number, from: number[], count: number) => from.slice().sort((a, b) => score(b) - score(a) || a - b).slice(0, count)
    for (const hd of dec.heads) {
      const lagScore = lagScores(ctx.cache.readKeys(hd.layer, hd.head), ctx.cache.readValues(hd.layer, hd.head), n, m.headDim, lag, 0, -Infinity)
      const taken = new Set(positions.slice(n - w))
      let lastScored = n - w - 1
      while (lagScore[lastScored] === -Infinity) lastScored--
      for (let i = n - w - 1; i > lastScored && taken.size < 12; i--) taken.add(i)
      for (const i of top((i) => lagScore[i], positions.filter((i) => !taken.has(i) && lagScore[i] > -Infinity), 12 - taken.size)) taken.add(i)
      const retention = (i: number) => {
        const z = layers[hd.layer].bias[hd.head] + layers[hd.layer].weight[hd.head].reduce((a, x, c) => a + x * hs[hd.layer][i * H + c], 0)
        return (n - i) * Math.log(1 / (1 + Math.exp(-z)))
      }
      for (const i of top(retention, positions.filter((i) => !taken.has(i)), C - taken.size)) taken.add(i)
      expect(Array.from(hd.keep)).toEqual([...taken].sort((a, b) => a - b))
    }
    // the same spec with the question in the prompt: the gates' half and the votes, as before
    ctx.promptAfter = 0
    const inPrompt = createPolicy(`unionkv:tokens=${C},window=${w},lag=${lag},afterFloor=0.25,gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    const plain = createPolicy(`unionkv:tokens=${C},window=${w},lag=${lag},gatesFile=${writeJSON(layers)}`, m)!.start().onPrefillEnd!(ctx)!
    expect(inPrompt.heads.map((hd) => Array.from(hd.keep))).toEqual(plain.heads.map((hd) => Array.from(hd.keep)))
    expect(inPrompt.heads.map((hd) => Array.from(hd.keep))).not.toEqual(dec.heads.map((hd) => Array.from(hd.keep)))
    expect(() => createPolicy('unionkv:afterRest=gates', m)).toThrow(/afterRest=gates needs gatesFile/)
  })

  it('UnionKV refuses gates for another model and decode-time compression with gates, naming the values', () => {
    const other = writeJSON(handGates(rng(83)).slice(0, 1))
    expect(() => createPolicy(`unionkv:gatesFile=${other}`, m)).toThrow(/unionkv: gates cover 1 layers, the model has 2/)
    expect(() => createPolicy(`unionkv:every=8,gatesFile=${writeJSON(handGates(rng(84)))}`, m)).toThrow(/every must be 0, got 8/)
  })

  it('compresses back to M every `every` decode steps, scoring each new token from its hidden state', () => {
    const r = rng(75)
    const layers = handGates(r)
    const n = 24
    const hsAll = Array.from({ length: m.layers }, () => randArray(r, (n + 4) * H, 2))
    const { ctx, cache } = randomContext(76, m, n, 4, (l) => ({ hiddenStates: hsAll[l].slice(0, n * H) }))
    const p = createTrimKV({ gates: readGatesFile(writeJSON(layers)), tokens: 16, every: 4 }).start()
    cache.apply(p.onPrefillEnd!(ctx)!)
    for (let step = 1; step <= 4; step++) {
      const hooks = Array.from({ length: m.layers }, (_, l) => {
        cache.append(l, randArray(r, m.kvHeads * 8), randArray(r, m.kvHeads * 8), Int32Array.of(n + step - 1))
        return { layer: l, hiddenStates: hsAll[l].slice((n + step - 1) * H, (n + step) * H) }
      })
      const d = p.onDecodeStep!({ ...ctx, hooks, step })
      if (step < 4) {
        expect(d).toBeNull()
        continue
      }
      for (const hd of d!.heads) {
        const pos = Array.from(cache.positions(hd.layer, hd.head))
        const hs = new Float32Array(pos.length * H)
        pos.forEach((p, i) => hs.set(hsAll[hd.layer].subarray(p * H, (p + 1) * H), i * H))
        expect(Array.from(hd.keep)).toEqual(refKeep(layers, hs, hd.layer, hd.head, pos, n + 4, 16))
      }
    }
  })

  it('names what is wrong with a gate file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trimkv-'))
    expect(() => readGatesFile(join(dir, 'none.json'))).toThrow(/not found.*none.json/)
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ format: 'trimkv-gates', hidden: 6, kvHeads: 2, layers: [{ weight: [[1, 2]], bias: [0, 0] }] }))
    expect(() => readGatesFile(join(dir, 'bad.json'))).toThrow(/layer 0 weight must be 2 rows of 6/)
    const bytes = safetensors({ 'gates.0.weight': { shape: [2, 6], data: new Array(12).fill(0) }, 'gates.0.bias': { shape: [2], data: [0, 0] } }, 'F32')
    const i64 = safetensors({ 'gates.0.weight': { shape: [2, 6], data: new Array(12).fill(0) }, 'gates.0.bias': { shape: [2], data: [0, 0] } }, 'F32', 'I64')
    expect(() => parseGatesSafetensors(i64)).toThrow(/dtype I64/)
    // gates for 1 layer on a 2-layer model
    const { ctx } = randomContext(1, m, 10, 2, () => ({ hiddenStates: new Float32Array(10 * 6) }))
    expect(() => createTrimKV({ gates: parseGatesSafetensors(bytes) }).start().onPrefillEnd!(ctx)).toThrow(/1 layers, the model has 2/)
    expect(() => createPolicy('trimkv', m)).toThrow(/gatesFile/)
  })
})

/** a safetensors file from plain arrays */
function safetensors(tensors: Record<string, { shape: number[]; data: number[] }>, dtype: 'F32' | 'F16', label: string = dtype): Uint8Array {
  const header: Record<string, unknown> = {}
  const chunks: Uint8Array[] = []
  let off = 0
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = dtype === 'F32' ? new Uint8Array(Float32Array.from(t.data).buffer) : new Uint8Array(Uint16Array.from(t.data, toHalf).buffer)
    header[name] = { dtype: label, shape: t.shape, data_offsets: [off, off + bytes.length] }
    chunks.push(bytes)
    off += bytes.length
  }
  const h = new TextEncoder().encode(JSON.stringify(header))
  const out = new Uint8Array(8 + h.length + off)
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true)
  out.set(h, 8)
  let p = 8 + h.length
  for (const c of chunks) {
    out.set(c, p)
    p += c.length
  }
  return out
}

/** float -> IEEE half (normal range, round to nearest) */
function toHalf(x: number): number {
  if (x === 0) return 0
  const s = x < 0 ? 0x8000 : 0
  const a = Math.abs(x)
  let e = Math.floor(Math.log2(a))
  let f = Math.round((a / 2 ** e - 1) * 1024)
  if (f === 1024) {
    f = 0
    e++
  }
  if (e < -14) return s | Math.round(a / 2 ** -24)
  return s | ((e + 15) << 10) | f
}

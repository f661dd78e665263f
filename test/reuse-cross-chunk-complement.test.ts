import { beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { defaultModelDir } from '../src/eval/paths.js'
import { HookCapture } from '../src/model/hooks.js'
import { CROSS_CHUNK_NEAR, CROSS_CHUNK_SPREAD, crossChunkScores } from '../src/reuse/cross-chunk.js'

// crossChunkScores takes the mass on earlier chunks as 1 minus the mass on the sink and the row's
// window (its chunk up to it, or the NEAR slots before it), attended through a one-row-a-page pointer
// table. Pinned here against a plain TypeScript twin in float64 that sums the counted keys' softmax
// directly, on a full prefill's queries and keys: rows near and far from their chunk's start, a run
// longer than one 64-row batch, and rows given with gaps (a recompute's scattered rows).
let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm' })) as LlamaModel
})

const words = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 2 + ((i * 7919 + seed * 104729) % 4000))

describe('crossChunkScores', () => {
  it('equals the twin that sums the attention on earlier chunks (sink and NEAR slots left out) to 1e-5', () => {
    const chunks = [[0, ...words(99, 1)], words(150, 2), [...words(60, 3), ...words(50, 1).slice(5), ...words(40, 2)]]
    const starts = Int32Array.from([0, 100, 250])
    const ids = chunks.flat()
    const N = ids.length
    const { qHeads, kvHeads, headDim: d } = model.config
    const group = qHeads / kvHeads
    const l = 2
    const cache = model.newCache('post-rope', 64, 'float32')
    const capture = new HookCapture({ observationWindow: N }, model.config, model.backend.heap, N)
    model.prefill(ids, cache, 0, capture)
    capture.finishPrefill()
    const qAll = capture.hooks[l].observationQueries! // [qHeads][N][d]
    // every slot but a few dropped ones (gaps split the runs, as a scattered recompute's rows do)
    const rows = Int32Array.from({ length: N }, (_, i) => i).filter((t) => t % 37 !== 5)
    const T = rows.length
    const queries = new Float32Array(T * qHeads * d)
    const lse = new Float32Array(T * qHeads)
    const keys = Array.from({ length: kvHeads }, (_, g) => cache.readKeys(l, g))
    // the twin: per row, the scaled scores over keys 0..t in float64
    const mass = new Float64Array(N)
    const startOf = (t: number) => Array.from(starts).filter((b) => b <= t).pop()!
    rows.forEach((t, i) => {
      for (let h = 0; h < qHeads; h++) {
        const q = qAll.subarray((h * N + t) * d, (h * N + t + 1) * d)
        queries.set(q, (i * qHeads + h) * d)
        const kh = keys[Math.floor(h / group)]
        const s = Array.from({ length: t + 1 }, (_, j) => {
          let dot = 0
          for (let c = 0; c < d; c++) dot += q[c] * kh[j * d + c]
          return dot / Math.sqrt(d)
        })
        const max = Math.max(...s)
        const sum = s.reduce((a, x) => a + Math.exp(x - max), 0)
        lse[i * qHeads + h] = max + Math.log(sum)
        const start = startOf(t)
        if (start === 0 || t - CROSS_CHUNK_NEAR < 2) continue
        mass[t] += s.reduce((a, x, j) => a + (j > 0 && j < Math.min(start, t - CROSS_CHUNK_NEAR) ? Math.exp(x - max) : 0), 0) / sum
      }
    })
    const present = new Set(rows)
    const twin = Array.from(rows, (t) => {
      let m = 0
      for (let j = Math.max(startOf(t), t - CROSS_CHUNK_SPREAD); j <= t; j++) if (present.has(j)) m = Math.max(m, mass[j])
      return m
    })
    const got = crossChunkScores(model.backend, model.config, cache, l, rows, { queries, lse }, starts)
    // the case covers both windows and real cross-chunk mass: far rows of chunk 1 and 2, near rows of both
    expect(twin.filter((x, i) => x > 0.01 && rows[i] >= 250 + CROSS_CHUNK_NEAR).length).toBeGreaterThan(10)
    expect(twin.filter((x, i) => x > 0.01 && rows[i] < 250 + CROSS_CHUNK_NEAR && rows[i] >= 250).length).toBeGreaterThan(10)
    const worst = Math.max(...twin.map((x, i) => Math.abs(x - got[i])))
    expect(worst).toBeLessThan(1e-5)
    capture.dispose()
    cache.dispose()
  })
})

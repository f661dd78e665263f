/**
 * ShadowKV's chunk layout (Sun et al. 2024, "ShadowKV: KV Cache in Shadows for High-Throughput
 * Long-Context LLM Inference", sec. 4.1-4.2; released code `ShadowKVCache.prefill_kv_cache`): the prompt's
 * slots [0, n) split into the first `sink` tokens, `chunks` chunks of `chunk` tokens, and the local
 * window (the last `local` tokens plus the remainder that does not fill a chunk). A chunk's landmark is
 * the mean of its post-RoPE keys; the chunks whose keys stray furthest from their landmark (lowest
 * minimum cosine similarity) are the outliers, kept whole; the others are scored by their landmark at
 * each step. Plain loops over [n][d] key rows: this runs once per head at prefill end.
 */

export interface ChunkGrid {
  /** first tokens always attended (slots [0, sink)) */
  sink: number
  /** tokens per chunk */
  chunk: number
  /** chunks between the sink and the local window: chunk c holds slots [sink + c chunk, sink + (c + 1) chunk) */
  chunks: number
  /** first slot of the local window (sink + chunks x chunk); [localStart, n) is always attended */
  localStart: number
}

/** The grid over n prompt slots; chunks = floor((n - sink - local) / chunk), at least 0. */
export function chunkGrid(n: number, sink: number, chunk: number, local: number): ChunkGrid {
  const s = Math.min(sink, n)
  const chunks = Math.max(0, Math.floor((n - s - local) / chunk))
  return { sink: s, chunk, chunks, localStart: s + chunks * chunk }
}

/** landmarks [chunks][d]: the mean key of each chunk, from keys [n][d] */
export function chunkLandmarks(keys: Float32Array, d: number, g: ChunkGrid): Float32Array {
  const out = new Float32Array(g.chunks * d)
  for (let c = 0; c < g.chunks; c++) {
    const first = g.sink + c * g.chunk
    for (let t = first; t < first + g.chunk; t++) for (let j = 0; j < d; j++) out[c * d + j] += keys[t * d + j]
    for (let j = 0; j < d; j++) out[c * d + j] /= g.chunk
  }
  return out
}

/** per chunk, the least cosine similarity of its keys to its landmark (0 against a zero vector) */
export function chunkMinCosine(keys: Float32Array, d: number, g: ChunkGrid, landmarks: Float32Array): Float32Array {
  const out = new Float32Array(g.chunks)
  for (let c = 0; c < g.chunks; c++) {
    let ll = 0
    for (let j = 0; j < d; j++) ll += landmarks[c * d + j] ** 2
    let least = Infinity
    const first = g.sink + c * g.chunk
    for (let t = first; t < first + g.chunk; t++) {
      let kl = 0
      let kk = 0
      for (let j = 0; j < d; j++) {
        kl += keys[t * d + j] * landmarks[c * d + j]
        kk += keys[t * d + j] ** 2
      }
      least = Math.min(least, kk > 0 && ll > 0 ? kl / Math.sqrt(kk * ll) : 0)
    }
    out[c] = least
  }
  return out
}

/** the slots of the listed chunks (ascending chunk indices give ascending slots) */
export function chunkSlots(g: ChunkGrid, chunkIds: ArrayLike<number>): Int32Array {
  const out = new Int32Array(chunkIds.length * g.chunk)
  for (let i = 0; i < chunkIds.length; i++) for (let t = 0; t < g.chunk; t++) out[i * g.chunk + t] = g.sink + chunkIds[i] * g.chunk + t
  return out
}

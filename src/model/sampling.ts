import { ModelInputError, shownValue } from './errors.js'

/** xorshift32 in [0, 1): seeded, so a sampled generation repeats exactly. */
export function seededRandom(seed: number): () => number {
  let s = (Math.floor(seed) ^ 0x9e3779b9) >>> 0 || 1
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4294967296
  }
}

export interface SamplingOptions {
  temperature: number
  topK: number
  topP: number
}

export function checkSampling(o: { temperature?: number; topK?: number; topP?: number }): SamplingOptions {
  const temperature = o.temperature ?? 0
  const topK = o.topK ?? 0
  const topP = o.topP ?? 1
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new ModelInputError(`generate: temperature must be a finite number >= 0, got ${shownValue(temperature)}`)
  if (!(Number.isInteger(topK) && topK >= 0)) throw new ModelInputError(`generate: topK must be an integer >= 0 (0: off), got ${shownValue(topK)}`)
  // compared as it was, a string ('0.9') or true (1: off) passed and was coerced at every draw
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1)) throw new ModelInputError(`generate: topP must be a number in (0, 1], got ${shownValue(topP)}`)
  return { temperature, topK, topP }
}

/** argmax at temperature 0 (ties to the lower id); otherwise top-k, then nucleus (top-p), then a draw */
export function sample(logits: Float32Array, o: SamplingOptions, random: () => number): number {
  if (o.temperature === 0) {
    let best = 0
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i
    return best
  }
  let ids = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b)
  if (o.topK > 0) ids = ids.slice(0, o.topK)
  const m = logits[ids[0]]
  let probs = ids.map((i) => Math.exp((logits[i] - m) / o.temperature))
  const total = probs.reduce((a, b) => a + b, 0)
  probs = probs.map((p) => p / total)
  if (o.topP < 1) {
    let acc = 0
    let cut = probs.length
    for (let i = 0; i < probs.length; i++) {
      acc += probs[i]
      if (acc >= o.topP) {
        cut = i + 1
        break
      }
    }
    ids = ids.slice(0, cut)
    probs = probs.slice(0, cut)
  }
  const mass = probs.reduce((a, b) => a + b, 0)
  let r = random() * mass
  for (let i = 0; i < ids.length; i++) {
    r -= probs[i]
    if (r < 0) return ids[i]
  }
  return ids[ids.length - 1]
}

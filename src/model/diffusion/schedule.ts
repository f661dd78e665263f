/**
 * Iterative unmasking (LLaDA, Nie et al. 2025, github.com/ML-GSAI/LLaDA generate.py): how many masks each
 * step unmasks, and which.
 */

/**
 * LLaDA's get_num_transfer_tokens: a block's `masks` masked tokens spread evenly over its `steps` steps
 * (the linear noise schedule unmasks the same expected number each step), the remainder one each to
 * the first steps. Returns [steps] counts summing to masks.
 */
export function numTransferTokens(masks: number, steps: number): number[] {
  const base = Math.floor(masks / steps)
  const rem = masks % steps
  return Array.from({ length: steps }, (_, s) => base + (s < rem ? 1 : 0))
}

/** Greedy prediction of one masked position: the argmax token and its softmax probability (the confidence). */
export interface Prediction {
  token: number
  confidence: number
}

/**
 * The argmax of one row of logits (the lowest id among equal maxima, as torch.argmax) and its softmax
 * probability: LLaDA's 'low_confidence' remasking scores a position by p(x0) of its greedy x0. The mask
 * token is never the prediction (unmasking a position to the mask would leave it masked; a trained
 * model gives it no mass, an untrained one may); the softmax is over the whole vocabulary.
 */
export function predict(logits: Float32Array, offset: number, vocab: number, mask: number): Prediction {
  let best = mask === 0 ? offset + 1 : offset
  for (let i = best + 1; i < offset + vocab; i++) if (logits[i] > logits[best] && i - offset !== mask) best = i
  const m = logits[best]
  let z = 0
  for (let i = offset; i < offset + vocab; i++) z += Math.exp(logits[i] - m)
  return { token: best - offset, confidence: 1 / z }
}

/**
 * Indices (into `confidence`) of the k most confident predictions, ascending: higher confidence first,
 * a tie going to the lower index (the lower position: LLaDA leaves ties to torch.topk, which is
 * unspecified; this makes decoding deterministic).
 */
export function mostConfident(confidence: readonly number[], k: number): number[] {
  const order = confidence.map((_, i) => i).sort((a, b) => confidence[b] - confidence[a] || a - b)
  return order.slice(0, k).sort((a, b) => a - b)
}

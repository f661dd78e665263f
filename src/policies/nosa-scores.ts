/**
 * NOSA's learned query-agnostic scores (Huang et al. 2025, "NOSA: Native and Offloadable Sparse
 * Attention", section 3): one linear score per KV head over a token's value row, s_i = w_h . v_i + b_h,
 * trained for the fixture model by tools/trained/train_nosa.py (models/fixture-14m-nosa).
 *
 * File format (safetensors): "scores.{l}.weight" [kvHeads, head_dim] and "scores.{l}.bias" [kvHeads] per
 * layer l, in F32, F16 or BF16. Errors: NosaScoresFileError for a file that is missing, malformed, holds a
 * non-finite number or has inconsistent shapes.
 */
import { PolicyFileError } from './errors.js'
import { namingFile, parseLayerLinears, readPolicyFile, type LayerLinears } from './layer-linears.js'

export class NosaScoresFileError extends PolicyFileError {
  override name = 'NosaScoresFileError'
}

const WHERE = 'nosa scores'
const fail = (m: string) => new NosaScoresFileError(m)

export function parseNosaScores(bytes: Uint8Array): LayerLinears {
  return parseLayerLinears(bytes, 'scores', WHERE, fail)
}

/** by file name (.safetensors; Node only) */
export function readNosaScoresFile(path: string): LayerLinears {
  if (!path.endsWith('.safetensors')) throw fail(`${WHERE}: "${path}" is not a .safetensors file`)
  const bytes = readPolicyFile(path, WHERE, fail)
  return namingFile(path, () => parseNosaScores(bytes), NosaScoresFileError)
}

/**
 * The learned score of each of n value rows of one KV head: values [n * headDim] row-major -> [n].
 * Throws NosaScoresFileError when the file has no such layer or head.
 */
export function learnedValueScores(scores: LayerLinears, layer: number, head: number, values: Float32Array, n: number): Float32Array {
  const L = scores.layers[layer]
  if (!L || head >= scores.outputs) throw fail(`${WHERE}: no score for layer ${layer}, head ${head} (the file has ${scores.layers.length} layers of ${scores.outputs} heads)`)
  const d = scores.inputs
  const w = L.weight.subarray(head * d, (head + 1) * d)
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    let s = L.bias[head]
    for (let c = 0; c < d; c++) s += w[c] * values[i * d + c]
    out[i] = s
  }
  return out
}

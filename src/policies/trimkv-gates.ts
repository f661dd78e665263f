/**
 * TRIM-KV retention gates: one linear gate per layer, hidden -> kvHeads, beta = sigmoid(W h + b).
 *
 * File formats (both hold, per layer l, weight [kvHeads][hidden] as torch.nn.Linear stores it, and bias [kvHeads]):
 * - JSON: { "format": "trimkv-gates", "hidden": H, "kvHeads": K,
 *           "layers": [ { "weight": [[H floats] x K], "bias": [K floats] }, ... ] }
 * - safetensors: tensors "gates.{l}.weight" [K, H] and "gates.{l}.bias" [K] in F32, F16 or BF16, for l = 0..L-1.
 * The safetensors file is read by layer-linears.ts (the model loader's fuzz-tested reader underneath).
 */
import { checkFiniteLayers, namingFile, parseLayerLinears, readPolicyFile } from './layer-linears.js'
import { PolicyFileError } from './errors.js'

export interface TrimKVGates {
  hidden: number
  kvHeads: number
  /** per layer: weight [kvHeads * hidden] row-major, bias [kvHeads] */
  layers: { weight: Float32Array; bias: Float32Array }[]
}

export class GateFileError extends PolicyFileError {
  override name = 'GateFileError'
}

/** log beta per KV head for one hidden state: log sigmoid(z) = -log(1 + e^-z), computed stably */
export function logRetention(g: TrimKVGates, layer: number, h: Float32Array, out: Float64Array): void {
  const L = g.layers[layer]
  if (!L) throw new GateFileError(`trimkv gates: no gate for layer ${layer} (the file has ${g.layers.length})`)
  for (let k = 0; k < g.kvHeads; k++) {
    let z = L.bias[k]
    for (let c = 0; c < g.hidden; c++) z += L.weight[k * g.hidden + c] * h[c]
    out[k] = z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z))
  }
}

export function parseGatesJSON(text: string): TrimKVGates {
  let j: { format?: string; hidden?: number; kvHeads?: number; layers?: { weight?: number[][]; bias?: number[] }[] }
  try {
    j = JSON.parse(text)
  } catch (e) {
    throw new GateFileError(`trimkv gates: not valid JSON (${(e as Error).message})`)
  }
  if (j.format !== 'trimkv-gates') throw new GateFileError(`trimkv gates: format must be "trimkv-gates", got ${JSON.stringify(j.format)}`)
  const H = j.hidden, K = j.kvHeads
  if (!Number.isInteger(H) || !Number.isInteger(K) || H! < 1 || K! < 1) throw new GateFileError(`trimkv gates: hidden and kvHeads must be positive integers, got ${H}, ${K}`)
  if (!Array.isArray(j.layers) || j.layers.length === 0) throw new GateFileError('trimkv gates: "layers" must be a non-empty array')
  const layers = j.layers.map((L, l) => {
    if (!Array.isArray(L.weight) || L.weight.length !== K || L.weight.some((r) => !Array.isArray(r) || r.length !== H)) {
      throw new GateFileError(`trimkv gates: layer ${l} weight must be ${K} rows of ${H} numbers`)
    }
    if (!Array.isArray(L.bias) || L.bias.length !== K) throw new GateFileError(`trimkv gates: layer ${l} bias must hold ${K} numbers`)
    return { weight: Float32Array.from(L.weight.flat()), bias: Float32Array.from(L.bias) }
  })
  checkFiniteLayers(layers, 'trimkv gates', (m) => new GateFileError(m))
  return { hidden: H!, kvHeads: K!, layers }
}

export function parseGatesSafetensors(bytes: Uint8Array): TrimKVGates {
  const g = parseLayerLinears(bytes, 'gates', 'trimkv gates', (m) => new GateFileError(m))
  return { hidden: g.inputs, kvHeads: g.outputs, layers: g.layers }
}

/** by file name: .json or .safetensors (Node only: reads synchronously so a policy spec can name a file) */
export function readGatesFile(path: string): TrimKVGates {
  const fail = (m: string) => new GateFileError(m)
  if (!path.endsWith('.json') && !path.endsWith('.safetensors')) throw fail(`trimkv gates: "${path}" is neither .json nor .safetensors`)
  const bytes = readPolicyFile(path, 'trimkv gates', fail)
  return namingFile(path, () => (path.endsWith('.json') ? parseGatesJSON(new TextDecoder().decode(bytes)) : parseGatesSafetensors(bytes)), GateFileError)
}

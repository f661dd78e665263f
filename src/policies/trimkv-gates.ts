/**
 * TRIM-KV retention gates: one linear gate per layer, hidden -> kvHeads, beta = sigmoid(W h + b).
 *
 * File formats (both hold, per layer l, weight [kvHeads][hidden] as torch.nn.Linear stores it, and bias [kvHeads]):
 * - JSON: { "format": "trimkv-gates", "hidden": H, "kvHeads": K,
 *           "layers": [ { "weight": [[H floats] x K], "bias": [K floats] }, ... ] }
 * - safetensors: tensors "gates.{l}.weight" [K, H] and "gates.{l}.bias" [K] in F32, F16 or BF16, for l = 0..L-1.
 * The safetensors file is read by the model loader's reader (src/model/safetensors.ts, fuzz-tested): a
 * file-format parser, not the model, so the policies still see no model internals.
 */
import { ModelLoadError } from '../model/errors.js'
import { parseSafetensorsBytes, tensorFloat32, type TensorInfo } from '../model/safetensors.js'
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
  return checkFinite({ hidden: H!, kvHeads: K!, layers })
}

export function parseGatesSafetensors(bytes: Uint8Array): TrimKVGates {
  const where = 'trimkv gates'
  // the model loader's reader: every offset and shape checked against the file before anything is read
  const fileError = (e: unknown) => (e instanceof ModelLoadError ? new GateFileError(e.message) : e)
  let header: Map<string, TensorInfo>
  try {
    header = parseSafetensorsBytes(bytes, where)
  } catch (e) {
    throw fileError(e)
  }
  const tensor = (name: string): { shape: number[]; values: Float32Array } => {
    const t = header.get(name)
    if (!t) throw new GateFileError(`${where}: tensor "${name}" is missing`)
    try {
      return { shape: t.shape, values: tensorFloat32(bytes, t, where) }
    } catch (e) {
      throw fileError(e)
    }
  }
  const layers: TrimKVGates['layers'] = []
  for (let l = 0; header.has(`gates.${l}.weight`); l++) {
    const w = tensor(`gates.${l}.weight`)
    const b = tensor(`gates.${l}.bias`)
    if (w.shape.length !== 2 || b.shape.length !== 1 || b.shape[0] !== w.shape[0]) {
      throw new GateFileError(`${where}: layer ${l} shapes ${JSON.stringify(w.shape)} and ${JSON.stringify(b.shape)} are not [K, H] and [K]`)
    }
    layers.push({ weight: w.values, bias: b.values })
  }
  if (layers.length === 0) throw new GateFileError(`${where}: no "gates.0.weight" tensor in the file`)
  const [K, H] = header.get('gates.0.weight')!.shape
  layers.forEach((L, l) => {
    if (L.weight.length !== K * H) throw new GateFileError(`${where}: layer ${l} weight is not [${K}, ${H}] like layer 0`)
  })
  return checkFinite({ hidden: H, kvHeads: K, layers })
}

/** by file name: .json or .safetensors (Node only: reads synchronously so a policy spec can name a file) */
export function readGatesFile(path: string): TrimKVGates {
  const fs = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined
  if (!fs) throw new GateFileError(`trimkv gates: cannot read "${path}" here (no node:fs); parse the bytes with parseGatesJSON / parseGatesSafetensors`)
  if (!fs.existsSync(path)) throw new GateFileError(`trimkv gates: file not found: ${path}`)
  if (path.endsWith('.json')) return parseGatesJSON(fs.readFileSync(path, 'utf8'))
  if (path.endsWith('.safetensors')) return parseGatesSafetensors(new Uint8Array(fs.readFileSync(path)))
  throw new GateFileError(`trimkv gates: "${path}" is neither .json nor .safetensors`)
}

function checkFinite(g: TrimKVGates): TrimKVGates {
  g.layers.forEach((L, l) => {
    if (!L.weight.every(Number.isFinite) || !L.bias.every(Number.isFinite)) throw new GateFileError(`trimkv gates: layer ${l} holds a non-finite number`)
  })
  return g
}

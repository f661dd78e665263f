/**
 * Per-layer linear heads read from safetensors: for l = 0..L-1, "{prefix}.{l}.weight" [outputs, inputs]
 * (as torch.nn.Linear stores it) and "{prefix}.{l}.bias" [outputs], in F32, F16 or BF16. Used by the trained
 * parts of policies: TRIM-KV's retention gates (prefix "gates", inputs = hidden size, outputs = KV heads)
 * and NOSA's query-agnostic value scores (prefix "scores", inputs = head_dim, outputs = KV heads).
 * The file is read by the model loader's reader (src/model/safetensors.ts, fuzz-tested).
 */
import { ModelLoadError } from '../model/errors.js'
import { parseSafetensorsBytes, tensorFloat32, type TensorInfo } from '../model/safetensors.js'

export interface LayerLinears {
  inputs: number
  outputs: number
  /** per layer: weight [outputs * inputs] row-major, bias [outputs] */
  layers: { weight: Float32Array; bias: Float32Array }[]
}

/** Parses the tensors of one prefix; a bad file throws `fail(message)` (the caller's typed error). */
export function parseLayerLinears(bytes: Uint8Array, prefix: string, where: string, fail: (message: string) => Error): LayerLinears {
  const fileError = (e: unknown) => (e instanceof ModelLoadError ? fail(e.message) : e)
  let header: Map<string, TensorInfo>
  try {
    header = parseSafetensorsBytes(bytes, where)
  } catch (e) {
    throw fileError(e)
  }
  const tensor = (name: string): { shape: number[]; values: Float32Array } => {
    const t = header.get(name)
    if (!t) throw fail(`${where}: tensor "${name}" is missing`)
    try {
      return { shape: t.shape, values: tensorFloat32(bytes, t, where) }
    } catch (e) {
      throw fileError(e)
    }
  }
  const layers: LayerLinears['layers'] = []
  for (let l = 0; header.has(`${prefix}.${l}.weight`); l++) {
    const w = tensor(`${prefix}.${l}.weight`)
    const b = tensor(`${prefix}.${l}.bias`)
    if (w.shape.length !== 2 || b.shape.length !== 1 || b.shape[0] !== w.shape[0]) {
      throw fail(`${where}: layer ${l} shapes ${JSON.stringify(w.shape)} and ${JSON.stringify(b.shape)} are not [K, H] and [K]`)
    }
    layers.push({ weight: w.values, bias: b.values })
  }
  if (layers.length === 0) throw fail(`${where}: no "${prefix}.0.weight" tensor in the file`)
  const [K, H] = header.get(`${prefix}.0.weight`)!.shape
  layers.forEach((L, l) => {
    if (L.weight.length !== K * H) throw fail(`${where}: layer ${l} weight is not [${K}, ${H}] like layer 0`)
  })
  checkFiniteLayers(layers, where, fail)
  return { inputs: H, outputs: K, layers }
}

/** every weight and bias finite, else `fail` naming the first layer that is not (any file format) */
export function checkFiniteLayers(layers: LayerLinears['layers'], where: string, fail: (message: string) => Error): void {
  layers.forEach((L, l) => {
    if (!L.weight.every(Number.isFinite) || !L.bias.every(Number.isFinite)) throw fail(`${where}: layer ${l} holds a non-finite number`)
  })
}

/** The file's bytes (Node only: reads synchronously so that a policy spec can name a file). */
export function readPolicyFile(path: string, where: string, fail: (message: string) => Error): Uint8Array {
  const fs = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined
  if (!fs) throw fail(`${where}: cannot read "${path}" here (no node:fs); parse the bytes instead`)
  // a folder or an unreadable file is the file's fault, named as such (not the runtime's raw EISDIR); Deno
  // refuses even the existence check outside --allow-read, which escaped as the runtime's own error
  const cannotRead = (e: unknown) => fail(`${where}: cannot read "${path}": ${(e as Error).message}`)
  let exists: boolean
  let isFile = false
  try {
    exists = fs.existsSync(path)
    if (exists) isFile = fs.statSync(path).isFile()
  } catch (e) {
    throw cannotRead(e)
  }
  if (!exists) throw fail(`${where}: file not found: ${path}`)
  if (!isFile) throw fail(`${where}: "${path}" is not a regular file`)
  try {
    return new Uint8Array(fs.readFileSync(path))
  } catch (e) {
    throw cannotRead(e)
  }
}

/** runs a parser of a file's bytes; its typed error gets the file's path in front (`path: message`) */
export function namingFile<T>(path: string, parse: () => T, errorClass: new (message: string) => Error): T {
  try {
    return parse()
  } catch (e) {
    if (e instanceof errorClass && !e.message.includes(path)) throw new errorClass(`${path}: ${e.message}`)
    throw e
  }
}

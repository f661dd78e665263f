import type { Heap } from '../backend/heap.js'
import type { ModelConfig } from './types.js'
import { ModelLoadError } from './errors.js'
import { SafetensorsFile, type TensorInfo } from './safetensors.js'
import { readJsonFile } from './json-file.js'
import type { ModelFileSource } from './source.js'

/** Byte pointers of one decoder layer's weights in the arena (biases 0 when absent). */
export interface LayerWeights {
  inputNorm: number
  q: number
  k: number
  v: number
  o: number
  qBias: number
  kBias: number
  vBias: number
  /** Llama configs with attention_bias / mlp_bias also bias o_proj and the MLP; 0 when absent */
  oBias: number
  gateBias: number
  upBias: number
  downBias: number
  postNorm: number
  gate: number
  up: number
  down: number
}

export interface Weights {
  embed: number
  layers: LayerWeights[]
  norm: number
  /** the LM head: the embedding table itself when tied */
  lmHead: number
  /** float32 bytes held */
  bytes: number
  /** every allocation, for dispose */
  allocations: number[]
}

const INDEX = 'model.safetensors.index.json'

/** Files of a folder's weights: the shards named by model.safetensors.index.json, or model.safetensors. */
async function openShards(source: ModelFileSource): Promise<{ files: SafetensorsFile[]; where: Map<string, [SafetensorsFile, TensorInfo]> }> {
  const indexPath = source.describe(INDEX)
  let names: string[]
  let weightMap: Record<string, unknown> | null = null
  const index = (await readJsonFile(source, INDEX, false)) as { weight_map?: Record<string, unknown> } | undefined
  if (index !== undefined) {
    const map = index?.weight_map
    if (!map || typeof map !== 'object' || Array.isArray(map)) throw new ModelLoadError(`${indexPath}: no weight_map object`)
    weightMap = map
    names = [...new Set(Object.values(map))].map((f) => {
      // a shard is a plain file name inside the folder: no paths, so an index cannot point outside it
      if (typeof f !== 'string' || /[/\\]/.test(f) || f === '..' || f === '.' || !f.endsWith('.safetensors')) {
        throw new ModelLoadError(`${indexPath}: shard name ${JSON.stringify(f)} must be a .safetensors file name inside the folder`)
      }
      return f
    })
  } else if ((await source.size('model.safetensors')) !== null) {
    names = ['model.safetensors']
  } else {
    throw new ModelLoadError(`${source.describe('')}: no model.safetensors or model.safetensors.index.json`)
  }
  const files: SafetensorsFile[] = []
  const where = new Map<string, [SafetensorsFile, TensorInfo]>()
  try {
    for (const n of names) {
      const f = await SafetensorsFile.open(source, n)
      files.push(f)
      for (const [name, info] of f.tensors) {
        // the index is authoritative: a tensor counts only in the shard it names
        if (!weightMap || weightMap[name] === n) where.set(name, [f, info])
      }
    }
    if (weightMap) {
      for (const [name, shard] of Object.entries(weightMap)) {
        if (!where.has(name)) throw new ModelLoadError(`${indexPath}: tensor ${name} should be in ${String(shard)}, which does not hold it`)
      }
    }
  } catch (e) {
    for (const f of files) f.close()
    throw e
  }
  return { files, where }
}

/** wasm32 memory: 65536 pages of 64 KiB */
const WASM_MAX_BYTES = 2 ** 32

/** bytes of float32 weights a config implies (the tensors loadWeights reads; optional biases excluded) */
export function weightBytes(cfg: ModelConfig): number {
  const { hidden: H, intermediate: I, qHeads, kvHeads, headDim: d, vocab, layers } = cfg
  const perLayer = 2 * H + (qHeads * d + 2 * kvHeads * d) * H + H * qHeads * d + 3 * I * H + (cfg.attentionBias ? qHeads * d + 2 * kvHeads * d : 0)
  return 4 * (vocab * H * (cfg.tieWordEmbeddings ? 1 : 2) + layers * perLayer + H)
}

/** ModelLoadError unless the config's float32 weights fit in what is left of wasm memory. */
export function checkWeightsFit(cfg: ModelConfig, heap: Heap, where: string): void {
  const need = weightBytes(cfg)
  const room = WASM_MAX_BYTES - heap.memory.buffer.byteLength
  if (need > room) throw new ModelLoadError(`${where}: the weights need ${need} bytes as float32, more than the ${room} bytes left in wasm memory (4 GiB at most)`)
}

/**
 * Loads the Llama-family weights as float32 into the arena (float16 and bfloat16 are widened on load:
 * twice the memory of float16, in exchange for kernels that read floats directly).
 */
export async function loadWeights(source: ModelFileSource, cfg: ModelConfig, heap: Heap): Promise<Weights> {
  const { files, where } = await openShards(source)
  // the whole size, from the config (each tensor's header shape is checked against it on load), before
  // the first allocation: a model that cannot fit in wasm memory is refused with nothing allocated
  try {
    checkWeightsFit(cfg, heap, source.describe(''))
    return await assembleWeights(cfg, heap, async (name, shape, optional) => {
      const hit = where.get(name)
      if (!hit) {
        if (optional) return null
        throw new ModelLoadError(`${source.describe('')}: tensor ${name} is missing`)
      }
      const [file, info] = hit
      if (info.shape.length !== shape.length || info.shape.some((s, i) => s !== shape[i])) {
        throw new ModelLoadError(`${file.path}: tensor ${name} has shape ${JSON.stringify(info.shape)}, config.json implies ${JSON.stringify(shape)}`)
      }
      return (ptr) => file.readInto(info, heap, ptr)
    })
  } finally {
    for (const f of files) f.close()
  }
}

/**
 * A tensor by its Hugging Face name and expected shape: null when absent and optional (absent and
 * required is the reader's error), else a function that fills the arena at `ptr` with it as float32.
 */
export type TensorReader = (name: string, shape: number[], optional: boolean) => Promise<((ptr: number) => Promise<void>) | null>

/**
 * The Llama-family weights by Hugging Face name, each allocated in the arena and filled by `read`; on
 * any error every allocation made so far is released. Every file format loads through this one list.
 */
export async function assembleWeights(cfg: ModelConfig, heap: Heap, read: TensorReader): Promise<Weights> {
  const allocations: number[] = []
  let bytes = 0
  const load = async (name: string, shape: number[], optional = false): Promise<number> => {
    const fill = await read(name, shape, optional)
    if (!fill) return 0
    const numel = shape.reduce((a, b) => a * b, 1)
    const ptr = heap.alloc(numel * 4, 64)
    allocations.push(ptr)
    bytes += numel * 4
    await fill(ptr)
    return ptr
  }
  try {
    const { hidden: H, intermediate: I, qHeads, kvHeads, headDim: d, vocab } = cfg
    const embed = await load('model.embed_tokens.weight', [vocab, H])
    const layers: LayerWeights[] = []
    for (let l = 0; l < cfg.layers; l++) {
      const p = `model.layers.${l}.`
      const bias = cfg.attentionBias
      layers.push({
        inputNorm: await load(p + 'input_layernorm.weight', [H]),
        q: await load(p + 'self_attn.q_proj.weight', [qHeads * d, H]),
        k: await load(p + 'self_attn.k_proj.weight', [kvHeads * d, H]),
        v: await load(p + 'self_attn.v_proj.weight', [kvHeads * d, H]),
        o: await load(p + 'self_attn.o_proj.weight', [H, qHeads * d]),
        qBias: bias ? await load(p + 'self_attn.q_proj.bias', [qHeads * d]) : 0,
        kBias: bias ? await load(p + 'self_attn.k_proj.bias', [kvHeads * d]) : 0,
        vBias: bias ? await load(p + 'self_attn.v_proj.bias', [kvHeads * d]) : 0,
        oBias: await load(p + 'self_attn.o_proj.bias', [H], true),
        gateBias: await load(p + 'mlp.gate_proj.bias', [I], true),
        upBias: await load(p + 'mlp.up_proj.bias', [I], true),
        downBias: await load(p + 'mlp.down_proj.bias', [H], true),
        postNorm: await load(p + 'post_attention_layernorm.weight', [H]),
        gate: await load(p + 'mlp.gate_proj.weight', [I, H]),
        up: await load(p + 'mlp.up_proj.weight', [I, H]),
        down: await load(p + 'mlp.down_proj.weight', [H, I]),
      })
    }
    const norm = await load('model.norm.weight', [H])
    const lmHead = cfg.tieWordEmbeddings ? embed : await load('lm_head.weight', [vocab, H])
    return { embed, layers, norm, lmHead, bytes, allocations }
  } catch (e) {
    for (const p of allocations) heap.release(p)
    throw e
  }
}

import { WebGpuUnavailableError, type GpuDevice } from './device.js'
import { GpuBufferPool } from './pool.js'
import { DEFAULT_SCORE_VARIANT, isRowsSpec, isScoreVariant, rowsConstants, SCORE_VARIANTS, UnknownScoreVariantError, type ScoreVariant } from './score-variants.js'
import { WGSL } from './wgsl.generated.js'

const ARG_SLOT = 256 // minUniformBufferOffsetAlignment: one dispatch's 16 argument words per slot
// dispatches one batch holds before it is sent: a whole decode step of a 32-layer model with TokenSelect's
// selection (about 30 a layer) goes in one submission
const ARG_SLOTS = 2048
const MAX_X = 65535

/** Which wgsl/ file holds each entry point. */
const ENTRIES: Record<string, string> = {
  score_keys: 'score', score_keys_wide: 'score', softmax_rows: 'softmax', log_sum_exp: 'softmax', row_stats: 'softmax', soft_vote: 'softmax',
  top_k: 'topk', pool_1d: 'pool', attend_split: 'attend', attend_reduce: 'attend', attend_rows: 'attend', page_summary: 'pages',
  matmul: 'model', matvec: 'model', matvec_rows: 'model', rmsnorm: 'model', rope: 'model', swiglu: 'model', add_in_place: 'model',
  stream_sum: 'stream', page_upper_bound: 'quest', page_token_indices: 'quest', append_rows: 'runtime',
  attend_causal: 'runtime', matmul_tiled: 'gemm', attend_causal_flash: 'flash', attend_causal_merge: 'flash',
  top_k_hist: 'topk_radix', top_k_count: 'topk_radix', top_k_emit: 'topk_radix',
  selection_cache_test: 'select', selection_windows: 'select', append_rows_f16: 'append_f16',
  score_packed_keys: 'packed', attend_packed_values: 'packed', move_rows: 'pages', compact_rows: 'pages',
}

/**
 * Files that read K/V rows through kv.*.wgsl, compiled twice: over float32 pages (kv.f32) and over
 * float16 pages (kv.f16, with half.native when the device has shader-f16, else half.unpack). Their
 * float16 entry points are these, as `${entry}_f16` pipelines.
 */
const KV_FILES = new Set(['score', 'attend', 'flash', 'runtime'])
const F16_ENTRIES = new Set(['score_keys', 'attend_split', 'attend_rows', 'attend_causal_flash', 'attend_causal'])

/** Files whose kernels also bind the kernels' own atomic scratch buffer (binding 2: the top-k's histograms). */
const WITH_RADIX = new Set(['topk_radix'])

/** radix words per row (wgsl/topk_radix.wgsl RADIX_ROW): three histograms, T and ties, 2 words per block */
const RADIX_ROW_WORDS = 5632
/** the most blocks one row of the multi-workgroup top-k takes (RADIX_ROW_WORDS = 5128 + 2 x this, rounded) */
export const TOP_K_BLOCKS = 252
/** the fewest elements a thread of the multi-workgroup top-k takes: short rows use fewer, fuller workgroups */
const TOP_K_PER_THREAD = 4

/** Helper files a kernel file uses (pasted before it). */
const INCLUDES: Record<string, string[]> = { score: ['quad'], attend: ['quad'], quest: ['quad'], gemm: ['tile'], flash: ['tile'] }

/** Workgroups of the kernels that stride over their rows: enough to fill a large GPU several times over. */
const STRIDE_GROUPS = 4096

const f32bits = (() => {
  const f = new Float32Array(1)
  const u = new Uint32Array(f.buffer)
  return (x: number) => {
    f[0] = x
    return u[0]
  }
})()

const words = (bytePtr: number) => bytePtr >>> 2

/** words of a row the row-move kernels copy (RangeError when rows are not whole 32-bit words) */
function rowWords(what: string, rowBytes: number): number {
  if (!Number.isInteger(rowBytes) || rowBytes < 4 || rowBytes % 4) throw new RangeError(`WebGpuKernels.${what}: rows of ${rowBytes} bytes are not whole 32-bit words`)
  return rowBytes / 4
}

/** float16 rows are read and written a 32-bit word (two halves) at a time */
function evenHeadDim(what: string, d: number): void {
  if (!Number.isInteger(d) || d < 2 || d % 2) throw new RangeError(`${what}: float16 rows of head dim ${d} are not whole 32-bit words (the head dim must be even)`)
}

/** The most tokens one attend_split workgroup takes (its workgroup arrays hold this many). */
export const ATTEND_SPLIT = 256

/** The largest head dim wgsl/flash.wgsl takes (its output tile holds 128 channels a row). */
export const FLASH_MAX_D = 128

/** Query rows a flash workgroup takes, and keys a tile (wgsl/flash.wgsl's FQ and FK). */
const FLASH_ROWS = 32
const FLASH_KEYS = 64
/** Workgroups (of 128 threads) the flash kernel aims at before it splits the keys: a large GPU's SMs several times over. */
const FLASH_GROUPS = 512
/** The fewest keys a split takes, so that the merge stays cheap beside the splits' work. */
const FLASH_MIN_SPLIT = 512

/**
 * How the flash kernel splits the keys of a chunk of T rows x hq query heads over at most `keys` keys a
 * head: 1 split when the query tiles alone make FLASH_GROUPS workgroups, else enough splits of at least
 * FLASH_MIN_SPLIT keys (a multiple of 64) to come near it. splitKeys: keys a split.
 */
export function flashSplit(T: number, hq: number, keys: number): { splits: number; splitKeys: number } {
  const tiles = Math.ceil(T / FLASH_ROWS) * hq
  const want = Math.max(1, Math.min(Math.floor(keys / FLASH_MIN_SPLIT), Math.ceil(FLASH_GROUPS / tiles)))
  const splitKeys = Math.max(FLASH_KEYS, Math.ceil(keys / want / FLASH_KEYS) * FLASH_KEYS)
  return { splits: Math.ceil(keys / splitKeys), splitKeys }
}

/** Scratch words of one flash split's partial rows: [T][hq] rows of d + 2 words (output, max, sum) rounded up to 4. */
const flashPartWords = (T: number, hq: number, d: number) => T * hq * Math.ceil((d + 2) / 4) * 4

/**
 * Scratch words attendCausal needs for every chunk of 2..chunk rows over at most `keys` keys a head at
 * flashSplit's default split (0 when no chunk splits), so one allocation serves every prefill step;
 * with `splitKeys`, for a chunk of `chunk` rows at that split.
 */
export function flashScratchWords(chunk: number, hq: number, d: number, keys: number, splitKeys?: number): number {
  if (splitKeys !== undefined) return Math.ceil(keys / splitKeys) * flashPartWords(chunk, hq, d)
  let most = 0
  for (let T = 2; T <= chunk; T++) {
    const { splits } = flashSplit(T, hq, keys)
    if (splits > 1) most = Math.max(most, splits * flashPartWords(T, hq, d))
  }
  return most
}

/**
 * Which kernels run the matmuls and causal attention of a chunk of two or more rows: 'tiled' (the
 * register-blocked matmul of wgsl/gemm.wgsl, FlashAttention-2 tiles of wgsl/flash.wgsl) or 'simple'
 * (one output a thread in 16 x 16 tiles, one workgroup a query row: the kernels before them, kept for
 * comparison in bench/webgpu-prefill.ts). One row always takes the matrix-vector and split kernels.
 */
export type ChunkKernels = 'tiled' | 'simple'
/**
 * The kernels of a decode step (one token): 'workgroup' (a GPU's: matvec, a workgroup an output row;
 * attend_split + attend_reduce, the sequence split over workgroups) or 'thread' (a CPU rasteriser's, no
 * barrier: matvec_rows, a thread an output row; attend_rows, a thread a query head).
 */
export type DecodeKernels = 'workgroup' | 'thread'

/**
 * Tokens per attend_split workgroup for a list of `count` tokens: the smallest power of two in [16, 256]
 * that keeps the splits at 512 or fewer. Short lists get small splits, so a 2048-token selection still
 * spreads over 128 workgroups (a GPU's worth) instead of 8 latency-bound ones; long lists cap the splits
 * that attend_reduce merges.
 */
export function attendSplit(count: number): number {
  let s = 16
  while (s < ATTEND_SPLIT && s * 512 < count) s *= 2
  return s
}

/**
 * Scratch words `attend` needs: per split and query head, a partial output of d words plus its max and
 * sum, padded to a multiple of 4 words (16-byte rows). With `split`, for that split; without, for the
 * default split of every list of at most `count` tokens (the default split doubles as lists grow, so a
 * shorter list can have more splits: 8192 tokens make 512 of 16, 10000 make 313 of 32), so one
 * allocation for the longest list serves every decode step.
 */
export function attendScratchWords(qHeads: number, d: number, count: number, split?: number): number {
  const row = Math.ceil((d + 2) / 4) * 4
  if (split !== undefined) return Math.ceil(count / split) * qHeads * row
  let most = 0
  for (let s = 16; s <= ATTEND_SPLIT; s *= 2) {
    const first = s === 16 ? 1 : (s / 2) * 512 + 1 // the shortest list attendSplit gives s
    if (first > count) break
    most = Math.max(most, Math.ceil((s === ATTEND_SPLIT ? count : Math.min(count, s * 512)) / s))
  }
  return most * qHeads * row
}

/**
 * The WGSL kernels over a GPU arena (`arena`: one storage buffer, the GPU twin of the wasm heap, so the
 * byte pointers and page tables are the same as on the CPU). Methods encode a dispatch into the open
 * batch and return at once; `submit()` sends the batch, `read()` submits and maps the bytes back: the only
 * readback. Arguments go through one uniform buffer of ARG_SLOTS slots (dynamic offsets), pipelines and bind
 * groups are made once, so steady-state calls create no GPU objects. Sizes are the caller's to check,
 * as with the wasm kernels; `Ops`-style validation belongs to the layer above.
 */
export class WebGpuKernels {
  readonly pool: GpuBufferPool
  private readonly device: GPUDevice
  private readonly pipelines = new Map<string, GPUComputePipeline>()
  private readonly layout: GPUBindGroupLayout
  private readonly pipelineLayout: GPUPipelineLayout
  private readonly radixPipelineLayout: GPUPipelineLayout
  private readonly argBuf: GPUBuffer
  private readonly argWords = new Uint32Array((ARG_SLOT * ARG_SLOTS) / 4)
  private readonly bindGroups = new Map<GPUBuffer, GPUBindGroup>()
  private readonly radixLayout: GPUBindGroupLayout
  private readonly radixBindGroups = new Map<GPUBuffer, GPUBindGroup>()
  /** the multi-workgroup top-k's histograms (zeroed at creation; each call leaves them zero) */
  private radix: GPUBuffer | null = null
  private radixRows = 0
  private slot = 0
  /** '_f16' while a float16 twin (scoreKeysF16, attendF16, attendCausalF16) encodes: its K/V kernels take the float16 pipelines */
  private kvSuffix = ''
  private encoder: GPUCommandEncoder | null = null
  private pass: GPUComputePassEncoder | null = null
  private error: GPUError | null = null
  private readonly modules = new Map<string, GPUShaderModule>()
  /** The buffer kernels read and write; set it before encoding. */
  arena: GPUBuffer | null = null
  /** The kernels for chunks of rows (ChunkKernels); 'tiled' unless a comparison asks for the old ones. */
  chunkKernels: ChunkKernels = 'tiled'
  private variant: ScoreVariant = DEFAULT_SCORE_VARIANT
  /** override constants of each score_keys_rows pipeline on this device (G: lanes a row after the subgroup cap), by its entry name `score_keys_rows:VARIANT` */
  private readonly rowsPipelines = new Map<string, { G: number; R: number; MQ: number }>()
  /** The kernels for one token's matmuls and attention (DecodeKernels): 'thread' on a software adapter, else 'workgroup'. */
  decodeKernels: DecodeKernels

  constructor(readonly gpu: GpuDevice) {
    const device = (this.device = gpu.device)
    this.decodeKernels = gpu.software ? 'thread' : 'workgroup'
    this.pool = new GpuBufferPool(device)
    device.addEventListener('uncapturederror', (e) => {
      this.error ??= (e as GPUUncapturedErrorEvent).error
    })
    this.layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: 64 } },
      ],
    })
    this.pipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.layout] })
    this.radixLayout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
        { binding: 1, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: 64 } },
        { binding: 2, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'storage' } },
      ],
    })
    this.radixPipelineLayout = device.createPipelineLayout({ bindGroupLayouts: [this.radixLayout] })
    this.argBuf = device.createBuffer({ size: ARG_SLOT * ARG_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST })
    const reduce = gpu.subgroups ? WGSL['reduce.subgroups'] : WGSL['reduce.shared']
    const modules = this.modules
    // `enable` directives must come first: the subgroup reductions open with one, shader-f16's is put before it
    const halves = gpu.shaderF16 ? ['enable f16;', reduce, WGSL.prelude, WGSL['kv.f16'], WGSL['half.native']] : [reduce, WGSL.prelude, WGSL['kv.f16'], WGSL['half.unpack']]
    const formats = { '': [reduce, WGSL.prelude, WGSL['kv.f32']], _f16: halves }
    for (const [entry, file] of Object.entries(ENTRIES)) {
      for (const [suffix, head] of Object.entries(formats)) {
        if ((suffix && !F16_ENTRIES.has(entry)) || modules.has(file + suffix)) continue
        const parts = [...head, ...(INCLUDES[file] ?? []).map((f) => WGSL[f]), WGSL[file]]
        modules.set(file + suffix, device.createShaderModule({ label: file + suffix, code: parts.join('\n') }))
      }
    }
    // the scoring variants: one pipeline of score_keys_rows per configuration (override constants), made at first use
    const info = (device as { adapterInfo?: { subgroupMinSize?: number } }).adapterInfo
    const subgroupMin = gpu.subgroups ? (info?.subgroupMinSize ?? 4) : 0
    for (const [name, spec] of Object.entries(SCORE_VARIANTS)) {
      if (!isRowsSpec(spec)) continue
      this.rowsPipelines.set(`score_keys_rows:${name}`, rowsConstants(spec, subgroupMin))
    }
  }

  /**
   * How `variant` runs on this device: lanes a key row (score_keys_rows' G after the subgroup cap; 4 for
   * the quad kernel), rows a lane group at once and the most workgroups.
   */
  scoreShape(variant: ScoreVariant): { lanes: number; rows: number; groups: number } {
    const spec = SCORE_VARIANTS[variant]
    if (spec === undefined) throw new UnknownScoreVariantError(String(variant))
    return isRowsSpec(spec) ? { lanes: this.rowsPipelines.get(`score_keys_rows:${variant}`)!.G, rows: spec.rows, groups: spec.groups } : { lanes: 4, rows: 1, groups: spec.groups }
  }

  /** The key-scoring kernel scoreKeys runs (score-variants.ts); UnknownScoreVariantError for another name. */
  get scoreVariant(): ScoreVariant {
    return this.variant
  }

  set scoreVariant(name: ScoreVariant) {
    if (!isScoreVariant(name)) throw new UnknownScoreVariantError(String(name))
    this.variant = name
  }

  /**
   * The entry point's pipeline, made at its first dispatch: the driver compiles a kernel for the device
   * there, which on a CPU rasteriser (SwiftShader JITs through LLVM) takes about half a second a kernel,
   * so a model that uses half of them loads that much sooner. The WGSL was checked whole at create().
   */
  private pipeline(entry: string, suffix = ''): GPUComputePipeline {
    let p = this.pipelines.get(entry + suffix)
    if (!p) {
      const constants = this.rowsPipelines.get(entry)
      const [entryPoint, file] = constants ? ['score_keys_rows', 'score'] : [entry, ENTRIES[entry]]
      const layout = WITH_RADIX.has(file) ? this.radixPipelineLayout : this.pipelineLayout
      const module = this.modules.get(file + suffix)!
      p = this.device.createComputePipeline({ label: entry + suffix, layout, compute: { module, entryPoint, ...(constants ? { constants } : {}) } })
      this.pipelines.set(entry + suffix, p)
    }
    return p
  }

  /** Compiles every kernel; a WGSL or pipeline error becomes a thrown Error naming it. */
  static async create(gpu: GpuDevice): Promise<WebGpuKernels> {
    const k = new WebGpuKernels(gpu)
    for (const [file, module] of k.modules) {
      const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error')
      if (errors.length) {
        k.destroy()
        const name = file.endsWith('_f16') ? `${file.slice(0, -4)}.wgsl (float16 pages)` : `${file}.wgsl`
        throw new Error(`WebGPU: wgsl/${name} did not compile: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`)
      }
    }
    return k
  }

  private live(): void {
    if (this.gpu.lost) throw new WebGpuUnavailableError('device-lost', `WebGPU: device lost (${this.gpu.lost.reason}): ${this.gpu.lost.message}`)
  }

  /**
   * Encodes one dispatch. `skip`: a byte pointer to a flag word that, when nonzero at run time, makes the
   * kernel do nothing (wgsl/prelude.wgsl `skipped`; only kernels that call it honour it).
   */
  private dispatch(entry: string, args: number[], groups: number, skip = -1): void {
    this.live()
    if (!this.arena) throw new Error('WebGpuKernels: set `arena` before encoding kernels')
    if (groups === 0) return
    if (this.slot === ARG_SLOTS) this.submit()
    // unused words are 0: word 14 is the skip flag, word 15 the zero neg_inf() reads
    const at = (this.slot * ARG_SLOT) / 4
    this.argWords.fill(0, at, at + 16)
    this.argWords.set(args, at)
    if (skip >= 0) this.argWords[at + 14] = words(skip) + 1
    if (!this.pass) {
      this.encoder = this.device.createCommandEncoder()
      this.pass = this.encoder.beginComputePass()
    }
    const bg = WITH_RADIX.has(ENTRIES[entry]) ? this.radixBindGroup() : this.arenaBindGroup()
    this.pass.setPipeline(this.pipeline(entry, this.kvSuffix && F16_ENTRIES.has(entry) ? this.kvSuffix : ''))
    this.pass.setBindGroup(0, bg, [this.slot * ARG_SLOT])
    const x = Math.min(groups, MAX_X)
    this.pass.dispatchWorkgroups(x, Math.ceil(groups / x))
    this.slot++
  }

  /** the arena (as 16-byte words in WGSL) and the argument slots: bindings 0 and 1 of every kernel */
  private arenaEntries(): GPUBindGroupEntry[] {
    const arena = this.arena!
    return [
      { binding: 0, resource: { buffer: arena, size: Math.floor(Math.min(arena.size, this.device.limits.maxStorageBufferBindingSize) / 16) * 16 } },
      { binding: 1, resource: { buffer: this.argBuf, size: 64 } },
    ]
  }

  private arenaBindGroup(): GPUBindGroup {
    let bg = this.bindGroups.get(this.arena!)
    if (!bg) {
      bg = this.device.createBindGroup({ layout: this.layout, entries: this.arenaEntries() })
      this.bindGroups.set(this.arena!, bg)
    }
    return bg
  }

  /** the arena's bind group with the radix buffer added (made once per arena and radix buffer) */
  private radixBindGroup(): GPUBindGroup {
    let bg = this.radixBindGroups.get(this.arena!)
    if (!bg) {
      bg = this.device.createBindGroup({ layout: this.radixLayout, entries: [...this.arenaEntries(), { binding: 2, resource: { buffer: this.radix! } }] })
      this.radixBindGroups.set(this.arena!, bg)
    }
    return bg
  }

  /**
   * Makes the radix buffer hold `rows` rows (a larger one replaces it: the first call of a new shape, never
   * a warm loop). A new buffer is zero, as the top-k passes expect.
   */
  private ensureRadix(rows: number): void {
    if (this.radix && this.radixRows >= rows) return
    this.submit()
    this.radix?.destroy()
    this.radix = this.device.createBuffer({ size: rows * RADIX_ROW_WORDS * 4, usage: GPUBufferUsage.STORAGE })
    this.radixRows = rows
    this.radixBindGroups.clear()
  }

  /** Sends what is encoded. Kernels run in encoding order. */
  submit(): void {
    if (!this.pass || !this.encoder) return
    this.pass.end()
    this.device.queue.writeBuffer(this.argBuf, 0, this.argWords, 0, (this.slot * ARG_SLOT) / 4)
    this.device.queue.submit([this.encoder.finish()])
    this.pass = null
    this.encoder = null
    this.slot = 0
  }

  /** Makes `buf` the arena (a grown mirror replaces the old one, whose bind group is dropped). */
  setArena(buf: GPUBuffer): void {
    if (this.arena && this.arena !== buf) {
      this.submit()
      this.bindGroups.delete(this.arena)
      this.radixBindGroups.delete(this.arena)
    }
    this.arena = buf
  }

  /** Writes bytes into the arena at a byte pointer (queued before the next batch). */
  write(ptr: number, data: ArrayBufferView): void {
    this.live()
    if (!this.arena) throw new Error('WebGpuKernels: set `arena` before writing')
    this.submit()
    this.device.queue.writeBuffer(this.arena, ptr, data.buffer, data.byteOffset, data.byteLength)
  }

  /** Submits the batch and copies `bytes` at byte pointer `ptr` back to the CPU (a pooled staging buffer). */
  async read(ptr: number, bytes: number): Promise<ArrayBuffer> {
    const got = await this.readRanges([[ptr, bytes]])
    return got.buffer.slice(0, bytes) as ArrayBuffer
  }


  /**
   * Submits the batch and copies the byte ranges [ptr, ptr + bytes) back, one after another in the
   * returned bytes (each range's length rounded up to 4), through one staging buffer and one map.
   */
  async readRanges(ranges: readonly (readonly [number, number])[]): Promise<Uint8Array> {
    this.live()
    if (!this.arena) throw new Error('WebGpuKernels: set `arena` before reading')
    this.submit()
    let size = 0
    for (const [, bytes] of ranges) size += Math.ceil(bytes / 4) * 4
    if (size === 0) return new Uint8Array(0)
    const staging = this.pool.acquire(size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST)
    const enc = this.device.createCommandEncoder()
    let at = 0
    for (const [ptr, bytes] of ranges) {
      const b = Math.ceil(bytes / 4) * 4
      if (b) enc.copyBufferToBuffer(this.arena, ptr, staging, at, b)
      at += b
    }
    this.device.queue.submit([enc.finish()])
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size)
    } catch (e) {
      this.pool.release(staging)
      this.live()
      throw e
    }
    const out = new Uint8Array(staging.getMappedRange(0, size).slice(0))
    staging.unmap()
    this.pool.release(staging)
    this.throwError()
    return out
  }

  private throwError(): void {
    if (this.error) {
      const err = this.error
      this.error = null
      throw new Error(`WebGPU: ${err.message}`)
    }
  }

  /** Waits until the device has run everything submitted (for timing). */
  async finish(): Promise<void> {
    this.submit()
    await this.device.queue.onSubmittedWorkDone()
  }

  // --- the kernels: byte pointers and element counts, as KernelBackend and ModelKernels take them ---

  /**
   * out[h * n + i] = scale * (q_h . k_i) for the qHeads query heads (q: [qHeads][d] floats) and the n
   * keys of a paged stream (table: byte pointers to pages of pageTokens rows of d floats), out:
   * [qHeads][n] floats. Runs `scoreVariant`'s kernel. `skip`: a flag word's byte pointer (nonzero at run
   * time: nothing is written).
   */
  scoreKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, scale: number, out: number, skip = -1): void {
    const { lanes, rows, groups: most } = this.scoreShape(this.variant)
    // rows a workgroup pass: 64 for the quad kernel, (256 / G) x R for score_keys_rows
    const groups = Math.min(most, Math.ceil(n / ((256 / lanes) * rows)))
    // the variants read float32 rows; float16 pages are scored by the quad kernel's float16 build
    const spec = SCORE_VARIANTS[this.variant]
    const entry = this.kvSuffix ? 'score_keys' : isRowsSpec(spec) ? `score_keys_rows:${this.variant}` : spec.wide ? 'score_keys_wide' : 'score_keys'
    this.dispatch(entry, [words(q), qHeads, d, words(table), pageTokens, n, f32bits(scale), words(out), groups], groups, skip)
  }

  /**
   * The store's moveRows on the GPU (wgsl/pages.wgsl): for each of `count` int32 pairs (dst row, src row)
   * at `pairs`, row src of the paged stream is copied onto row dst; the pairs must not chain (no target
   * is another pair's source), as the store's hole filling guarantees. Rows of rowBytes, a multiple of 4.
   */
  moveRows(table: number, pageTokens: number, rowBytes: number, pairs: number, count: number): void {
    const w = rowWords('moveRows', rowBytes)
    this.dispatch('move_rows', [words(table), pageTokens, w, words(pairs), count], Math.ceil((count * w) / 256))
  }

  /**
   * The store's compactRows on the GPU: row keep[j] moves to row j for the nKeep ascending int32 rows at
   * `keep`, order kept, through `scratch` (nKeep x rowBytes bytes: threads run in no order, so the kept
   * rows go out and come back in two dispatches). Rows of rowBytes, a multiple of 4.
   */
  compactRows(table: number, pageTokens: number, rowBytes: number, keep: number, nKeep: number, scratch: number): void {
    const w = rowWords('compactRows', rowBytes)
    const groups = Math.ceil((nKeep * w) / 256)
    for (const direction of [0, 1]) this.dispatch('compact_rows', [words(table), pageTokens, w, words(keep), nKeep, words(scratch), direction], groups)
  }

  /**
   * PackedKernels.scorePackedKeys on the GPU (wgsl/packed.wgsl): out[h * n + i] = scale * (q[h] . k_i)
   * over n packed keys of d channels (`bits` = 8, 4, 2, 1, groups of 32 tokens), the keys dequantized in
   * registers. Byte pointers into the arena; the page table's pages hold pageTokens tokens (a multiple of
   * 32). Needs no scratch (the parameter keeps the CPU kernels' shape). RangeError for other bits, or
   * hi > 0 (int2+sign keys: VidKV's pages are read by the compute core's scoreSignKeys), or key groups
   * other than 32 tokens (wgsl/packed.wgsl reads 32-token chunks).
   */
  scorePackedKeys(q: number, qHeads: number, d: number, table: number, pageTokens: number, n: number, bits: number, hi: number, scale: number, out: number, _scratch = 0, group = 32): void {
    if (![8, 4, 2, 1].includes(bits) || hi !== 0) throw new RangeError(`WebGpuKernels.scorePackedKeys: int8/4/2/1 keys only (bits ${bits}, hi ${hi})`)
    if (group !== 32) throw new RangeError(`WebGpuKernels.scorePackedKeys: key groups of 32 tokens only, got group ${group}`)
    this.dispatch('score_packed_keys', [words(q), qHeads, d, words(table), pageTokens, n, bits, f32bits(scale), words(out)], Math.ceil(n / 256))
  }

  /**
   * PackedKernels.attendPacked on the GPU: softmax(scale q_r . K^T) V for `rows` query rows over n packed
   * tokens (keys as scorePackedKeys; values vBits-bit in groups of 32 channels, 0: ternary), out rows of vd floats at a stride of
   * outStride floats, lse[r] the log-sum-exp of the scaled scores (lse = 0: not written). scratch: rows x
   * (n + 2) floats, within packedAttendScratch(rows, d, vd, n).
   */
  attendPacked(
    q: number, rows: number, d: number, vd: number, kTable: number, vTable: number, pageTokens: number, n: number,
    kBits: number, kHi: number, vBits: number, scale: number, out: number, outStride: number, lse: number, scratch: number,
    group = 32, vGroup = 32,
  ): void {
    if (![8, 4, 2, 1, 0].includes(vBits)) throw new RangeError(`WebGpuKernels.attendPacked: int8/4/2/1 or ternary (0) values only, got vBits ${vBits}`)
    if (group !== 32 || vGroup !== 32) throw new RangeError(`WebGpuKernels.attendPacked: key and value groups of 32 only, got group ${group}, vGroup ${vGroup}`)
    const stats = scratch + rows * n * 4
    this.scorePackedKeys(q, rows, d, kTable, pageTokens, n, kBits, kHi, scale, scratch)
    this.dispatch('row_stats', [words(scratch), rows, n, words(stats)], rows)
    const args = [words(scratch), rows, n, words(stats), words(vTable), pageTokens, vd, vBits, words(out), outStride, words(lse), lse ? 1 : 0]
    this.dispatch('attend_packed_values', args, Math.ceil((rows * vd) / 256))
  }

  softmaxRows(x: number, rows: number, n: number): void {
    this.dispatch('softmax_rows', [words(x), rows, n], rows)
  }

  /** out[0] = log-sum-exp of n floats (stays on the GPU; read it back only if the CPU needs it). */
  logSumExp(x: number, n: number, out: number): void {
    this.dispatch('log_sum_exp', [words(x), n, words(out)], 1)
  }

  /** out[i] = sum_r softmax(x[r])[i]; scratch: 2 * rows floats; `skip` as scoreKeys. */
  softVote(x: number, rows: number, n: number, out: number, scratch: number, skip = -1): void {
    this.dispatch('row_stats', [words(x), rows, n, words(scratch)], rows, skip)
    this.dispatch('soft_vote', [words(x), rows, n, words(scratch), words(out)], Math.ceil(n / 256), skip)
  }

  /** Indices of the k largest (ties to the lower index, ascending), as KernelBackend.topK; needs no scratch. */
  topK(x: number, n: number, k: number, outIdx: number): void {
    if (k > n) throw new RangeError(`topK: k = ${k} exceeds n = ${n}`)
    if (k === 0) return
    this.dispatch('top_k', [words(x), n, k, words(outIdx)], 1)
  }

  /**
   * Exact top-k of each of `rows` rows over many workgroups (wgsl/topk_radix.wgsl): row r is the n floats
   * at x + r * xStride floats; its k indices (ascending, ties to the lower index, NaN below -Infinity,
   * -0 == +0: the wasm core's topK, assembly/kernels/topk.ts) + `add` go to out + r * outStride ints.
   * Five dispatches whatever n is, a row spread over up to TOP_K_BLOCKS workgroups. `skip`: a flag word's
   * byte pointer; nonzero at run time leaves out untouched. Throws RangeError for k outside 0..n or n
   * past 2^31 - 1 (k = 0 encodes nothing).
   */
  topKRows(x: number, rows: number, xStride: number, n: number, k: number, out: number, outStride: number, add = 0, skip = -1): void {
    if (!Number.isInteger(n) || n < 1 || n > 0x7fffffff) throw new RangeError(`topKRows: n = ${n} is not an integer in 1..2^31-1`)
    if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`topKRows: k = ${k} is not an integer in 0..${n}`)
    if (!Number.isInteger(rows) || rows < 1) throw new RangeError(`topKRows: rows = ${rows} is not a positive integer`)
    if (k === 0) return
    const per = Math.max(TOP_K_PER_THREAD, Math.ceil(n / (TOP_K_BLOCKS * 256)))
    const blocks = Math.ceil(n / (per * 256))
    this.ensureRadix(rows)
    const args = (round: number) => [words(x), n, k, xStride, round, blocks, per, words(out), outStride, add]
    for (let round = 0; round < 3; round++) this.dispatch('top_k_hist', args(round), rows * blocks, skip)
    this.dispatch('top_k_count', args(3), rows * blocks, skip)
    this.dispatch('top_k_emit', args(3), rows * blocks, skip)
  }

  /**
   * TokenSelect's Selection Cache test (Wu et al. 2025, sec. 3.4) on the GPU: the flag word at `flag`
   * becomes 1 when `valid` and cos(q, cached) >= threshold over n floats, else 0 and cached = q. Pass the
   * flag as `skip` to the kernels that recompute the selection.
   */
  selectionCacheTest(q: number, cached: number, n: number, threshold: number, flag: number, valid: boolean): void {
    this.dispatch('selection_cache_test', [words(q), words(cached), n, f32bits(threshold), words(flag), valid ? 1 : 0], 1)
  }

  /**
   * The first/last windows of `rows` selection lists of first + k + last slots (int32, row stride
   * `stride` ints) over n slots: [0, first) before and [n - last, n) after the k chosen ones.
   */
  selectionWindows(list: number, rows: number, stride: number, n: number, first: number, last: number, k: number): void {
    this.dispatch('selection_windows', [words(list), rows, stride, n, first, last, k], Math.ceil((rows * (first + last)) / 256))
  }

  maxPool1d(x: number, n: number, kernel: number, out: number): void {
    this.dispatch('pool_1d', [words(x), n, kernel, words(out), 0], Math.ceil(n / 256))
  }

  avgPool1d(x: number, n: number, kernel: number, out: number): void {
    this.dispatch('pool_1d', [words(x), n, kernel, words(out), 1], Math.ceil(n / 256))
  }

  /**
   * Decode attention as KernelBackend.attend (idx = 0: dense over n tokens; else nIdx gathered indices),
   * split into `split`-token pieces (flash-decoding) reduced by log-sum-exp; with `decodeKernels`
   * 'thread', one thread a query head over all the tokens (split and scratch unused). d <= 256.
   * scratch: attendScratchWords(qHeads, d, idx ? nIdx : n, split) floats.
   * Throws RangeError for d > 256 or a split outside 1..ATTEND_SPLIT.
   */
  attend(
    q: number, qHeads: number, d: number, kTable: number, vTable: number, pageTokens: number, n: number,
    idx: number, nIdx: number, scale: number, out: number, lse: number, scratch: number,
    split = attendSplit(idx ? nIdx : n),
  ): void {
    if (d > 256) throw new RangeError(`attend: head dim ${d} exceeds the WGSL kernel's 256`)
    if (!Number.isInteger(split) || split < 1 || split > ATTEND_SPLIT) throw new RangeError(`attend: split ${split} is not an integer in 1..${ATTEND_SPLIT}`)
    const count = idx ? nIdx : n
    const args = [words(q), qHeads, d, words(kTable), words(vTable), pageTokens, count, words(idx), idx ? 1 : 0,
      f32bits(scale), words(scratch), words(out), words(lse), split]
    if (this.decodeKernels === 'thread') return this.dispatch('attend_rows', args, Math.ceil(qHeads / 64))
    this.dispatch('attend_split', args, Math.ceil(count / split))
    this.dispatch('attend_reduce', args, qHeads)
  }

  pageMinMax(table: number, pageTokens: number, n: number, d: number, page: number, outMin: number, outMax: number): void {
    this.dispatch('page_summary', [words(table), pageTokens, n, d, page, words(outMin), words(outMax), 0], Math.ceil((Math.ceil(n / page) * d) / 256))
  }

  chunkMeans(table: number, pageTokens: number, n: number, d: number, chunk: number, out: number): void {
    this.dispatch('page_summary', [words(table), pageTokens, n, d, chunk, words(out), 0, 1], Math.ceil((Math.ceil(n / chunk) * d) / 256))
  }

  /**
   * Quest's page scores (Tang et al. 2024, sec. 3) for one KV head's GQA group: out[p] = sum over the
   * qHeads query heads and the d channels of max(q_c * kmin[p][c], q_c * kmax[p][c]), an upper bound of
   * the group's summed attention logits over page p. kmin, kmax: [pages][d] as pageMinMax writes them.
   */
  pageUpperBound(q: number, qHeads: number, d: number, kmin: number, kmax: number, pages: number, out: number): void {
    const groups = Math.min(STRIDE_GROUPS, Math.ceil(pages / 64))
    this.dispatch('page_upper_bound', [words(q), qHeads, d, words(kmin), words(kmax), pages, words(out), groups], groups)
  }

  /**
   * Token indices of chosen pages of `page` tokens: out[i] = pagesIdx[i / page] * page + i % page for
   * i < count (i32 in and out). With the partial last page listed last, count = its start + its length.
   */
  pageTokenIndices(pagesIdx: number, count: number, page: number, out: number): void {
    this.dispatch('page_token_indices', [words(pagesIdx), count, page, words(out)], Math.ceil(count / 256))
  }

  /**
   * y = x w^T + bias as ModelKernels.matmul: x [T][inDim], w [outDim][inDim], y [T][outDim]. One token
   * takes the matrix-vector kernel (`decodeKernels`: a workgroup or a thread a row); more take the 64 x 64-tile register-blocked kernel (wgsl/gemm.wgsl),
   * or the 16 x 16 one when `chunkKernels` is 'simple'.
   */
  matmul(x: number, w: number, bias: number, y: number, T: number, inDim: number, outDim: number): void {
    const args = [words(x), words(w), words(bias), words(y), T, inDim, outDim, bias ? 1 : 0]
    if (T === 1 && this.decodeKernels === 'thread') this.dispatch('matvec_rows', args, Math.ceil(outDim / 64))
    else if (T === 1) this.dispatch('matvec', args, outDim)
    else if (this.chunkKernels === 'tiled') this.dispatch('matmul_tiled', args, Math.ceil(T / 64) * Math.ceil(outDim / 64))
    else this.dispatch('matmul', args, Math.ceil(T / 16) * Math.ceil(outDim / 16))
  }

  rmsnorm(x: number, g: number, out: number, T: number, dim: number, eps: number): void {
    this.dispatch('rmsnorm', [words(x), words(g), words(out), T, dim, f32bits(eps)], T)
  }

  rope(x: number, T: number, heads: number, d: number, cos: number, sin: number): void {
    this.dispatch('rope', [words(x), T, heads, d, words(cos), words(sin)], Math.ceil((T * heads * (d >> 1)) / 256))
  }

  swiglu(gate: number, up: number, out: number, n: number): void {
    this.dispatch('swiglu', [words(gate), words(up), words(out), n], Math.ceil(n / 256))
  }

  addInPlace(y: number, x: number, n: number): void {
    this.dispatch('add_in_place', [words(y), words(x), n], Math.ceil(n / 256))
  }

  /**
   * Appends T rows per KV head to the paged float32 cache: k, v [T][kvHeads][d] to slots first_g + t.
   * tabs: [kvHeads][4] int32 (key table, value table, first new slot, rows after the append).
   */
  appendRows(k: number, v: number, T: number, kvHeads: number, d: number, tabs: number, pageTokens: number): void {
    this.dispatch('append_rows', [words(k), words(v), T, kvHeads, d, words(tabs), pageTokens], Math.ceil((T * kvHeads * d) / 256))
  }

  /**
   * Causal attention of a chunk as ModelKernels.attendCausal for every KV head at once: q, out
   * [T][hq][d] (row strides qStride, outStride floats), query head h on KV head h / group, row t of
   * head g seeing min(n_g, first_g + 1 + t) keys (tabs as appendRows). d <= 256. Chunks of two or more
   * rows with d <= FLASH_MAX_D take the FlashAttention-2 kernel (wgsl/flash.wgsl: 32 query rows of a
   * head a workgroup) unless `chunkKernels` is 'simple'; the rest take one workgroup a row and head.
   * With `keys` (the most keys any KV head holds after the append) and `scratch`
   * (flashScratchWords(T, hq, d, keys[, splitKeys]) floats, 16-byte aligned), the flash kernel also
   * splits the keys of a short chunk (flashSplit; `splitKeys`, a multiple of 64, overrides its split)
   * and merges the splits. Throws RangeError for d > 256 or a bad splitKeys.
   */
  attendCausal(
    q: number, qStride: number, hq: number, group: number, T: number, d: number, tabs: number, pageTokens: number,
    scale: number, out: number, outStride: number, keys = 0, scratch = 0, splitKeys = flashSplit(T, hq, keys).splitKeys,
  ): void {
    if (d > 256) throw new RangeError(`attendCausal: head dim ${d} exceeds the WGSL kernel's 256`)
    if (!Number.isInteger(splitKeys) || splitKeys < FLASH_KEYS || splitKeys % FLASH_KEYS) throw new RangeError(`attendCausal: splitKeys ${splitKeys} is not a positive multiple of ${FLASH_KEYS}`)
    const splits = keys && scratch ? Math.ceil(keys / splitKeys) : 1
    const args = [words(q), qStride, hq, group, d, words(tabs), pageTokens, f32bits(scale), words(out), outStride, T, splits, splitKeys, words(scratch)]
    if (T > 1 && d <= FLASH_MAX_D && this.chunkKernels === 'tiled') {
      this.dispatch('attend_causal_flash', args, Math.ceil(T / FLASH_ROWS) * hq * splits)
      if (splits > 1) this.dispatch('attend_causal_merge', [words(out), outStride, hq, d, T, words(scratch), splits], Math.ceil((T * hq * d) / 256))
    } else this.dispatch('attend_causal', args, T * hq)
  }

  // --- float16 pages (kvDtype 'float16'): the same kernels reading rows of halves (wgsl/kv.f16.wgsl) ---

  /** encodes `run` with the K/V kernels over float16 pages; d (the row length) must be even */
  private overHalves(what: string, d: number, run: () => void): void {
    evenHeadDim(what, d)
    this.kvSuffix = '_f16'
    try {
      run()
    } finally {
      this.kvSuffix = ''
    }
  }

  /**
   * scoreKeys over a page table of float16 keys (rows of d halves, the KV store's float16 pages: the
   * compute core's scoreKeysF16). Sums run in f32 over the widened halves. RangeError for an odd d.
   */
  scoreKeysF16(...a: Parameters<WebGpuKernels['scoreKeys']>): void {
    this.overHalves('scoreKeysF16', a[2], () => this.scoreKeys(...a))
  }

  /** attend over float16 K and V pages (the compute core's attendGatheredF16); scratch as attend. RangeError for an odd d. */
  attendF16(...a: Parameters<WebGpuKernels['attend']>): void {
    this.overHalves('attendF16', a[2], () => this.attend(...a))
  }

  /** attendCausal over float16 K and V pages (the compute core's attendCausalF16). RangeError for an odd d. */
  attendCausalF16(...a: Parameters<WebGpuKernels['attendCausal']>): void {
    this.overHalves('attendCausalF16', a[5], () => this.attendCausal(...a))
  }

  /**
   * appendRows to float16 pages: k, v [T][kvHeads][d] float32, rounded to halves as the compute core's
   * toFloat16 rounds them (nearest, ties to even, saturating at +-65504; wgsl/append_f16.wgsl), so the
   * pages hold the bytes a CPU append writes. tabs as appendRows. RangeError for an odd d.
   */
  appendRowsF16(k: number, v: number, T: number, kvHeads: number, d: number, tabs: number, pageTokens: number): void {
    evenHeadDim('appendRowsF16', d)
    this.dispatch('append_rows_f16', [words(k), words(v), T, kvHeads, d, words(tabs), pageTokens], Math.ceil((T * kvHeads * (d / 2)) / 256))
  }

  /**
   * Bandwidth yardstick: each of groups*256 threads sums a strided share of n floats into out[thread].
   * x must be 16-byte aligned (the kernel makes 16-byte loads); RangeError otherwise.
   */
  streamSum(x: number, n: number, out: number, groups: number): void {
    if (x % 16 !== 0) throw new RangeError(`streamSum: x = ${x} is not 16-byte aligned`)
    this.dispatch('stream_sum', [words(x), n, words(out)], groups)
  }

  /** Frees the pooled buffers and the argument buffer (the device stays open: GpuDevice.destroy closes it). */
  destroy(): void {
    this.pool.destroy()
    this.argBuf.destroy()
    this.radix?.destroy()
    this.radixBindGroups.clear()
    this.bindGroups.clear()
  }
}

/**
 * The key-scoring kernels WebGpuKernels.scoreKeys can run, by name: out[h * n + i] = scale * (q_h . k_i)
 * (the same outputs, within float rounding). bench/webgpu.ts times every one against the streaming-read
 * yardstick in one process, so one run on a GPU picks the fastest; DEFAULT_SCORE_VARIANT is the one
 * the runtime uses.
 *   quad: wgsl/score.wgsl, one quad (4 lanes) a key row, the query in workgroup memory, at most 4096
 *   workgroups striding over the keys; quad-gN the same kernel with at most N workgroups (8192 is the
 *   streaming yardstick's best grid on an H200; 16384 covers a million keys in one pass); quad-wide
 *   (score_keys_wide) issues a d = 128 row's eight 16-byte loads a lane at once (quad_dot_wide).
 *   warp-r4, warp-r8, warp-r4-g1024, half-r4: wgsl/score.wgsl (score_keys_rows), `lanes` lanes a row (a whole warp
 *   of 32, or half of one) and `rows` rows a lane group at once, the lane's query columns in registers;
 *   -gN caps the workgroups at N instead of 4096: 1024 long-lived ones striding over the keys, or 8192
 *   (the streaming yardstick's best grid on an H200).
 */
export type ScoreVariant = 'quad' | 'quad-g8192' | 'quad-g16384' | 'quad-wide' | 'quad-wide-g16384' | 'warp-r4' | 'warp-r8' | 'warp-r4-g1024' | 'warp-r8-g1024' | 'warp-r4-g8192' | 'half-r4'

/**
 * The scoring kernel the runtime runs: the bench's winner. On a quiet H200 (three runs of `node
 * dist/bench/webgpu.js --full`, 2026-12-01) quad-wide read 0.70-0.73 of the streaming sum's bandwidth,
 * quad 0.64-0.66, the score_keys_rows variants 0.20-0.28.
 */
export const DEFAULT_SCORE_VARIANT: ScoreVariant = 'quad-wide'

/** A score_keys_rows configuration: lanes a row (G), rows a group at once (R), most workgroups. */
export interface RowsSpec {
  lanes: number
  rows: number
  groups: number
}

/** A configuration of the quad kernel: the most workgroups; wide: score_keys_wide's loads. */
export interface QuadSpec {
  quad: true
  groups: number
  wide?: boolean
}

/** Every variant: a quad kernel's or a score_keys_rows configuration. */
export const SCORE_VARIANTS: Readonly<Record<ScoreVariant, QuadSpec | RowsSpec>> = {
  quad: { quad: true, groups: 4096 },
  'quad-g8192': { quad: true, groups: 8192 },
  'quad-g16384': { quad: true, groups: 16384 },
  'quad-wide': { quad: true, groups: 4096, wide: true },
  'quad-wide-g16384': { quad: true, groups: 16384, wide: true },
  'warp-r4': { lanes: 32, rows: 4, groups: 4096 },
  'warp-r8': { lanes: 32, rows: 8, groups: 4096 },
  'warp-r4-g1024': { lanes: 32, rows: 4, groups: 1024 },
  'warp-r8-g1024': { lanes: 32, rows: 8, groups: 1024 },
  'warp-r4-g8192': { lanes: 32, rows: 4, groups: 8192 },
  'half-r4': { lanes: 16, rows: 4, groups: 4096 },
}

/** Thrown for a name that is not a ScoreVariant. */
export class UnknownScoreVariantError extends Error {
  constructor(readonly variant: string) {
    super(`scoreVariant: '${variant}' is not one of ${Object.keys(SCORE_VARIANTS).join(', ')}`)
    this.name = 'UnknownScoreVariantError'
  }
}

/** Whether a variant's spec runs score_keys_rows (false: the quad kernel). */
export function isRowsSpec(spec: QuadSpec | RowsSpec): spec is RowsSpec {
  return !('quad' in spec)
}

export function isScoreVariant(name: string): name is ScoreVariant {
  return Object.hasOwn(SCORE_VARIANTS, name)
}

/**
 * The override constants of wgsl/score.wgsl (score_keys_rows) for a spec on a device whose subgroups are at least
 * `subgroupMin` lanes (0: no subgroups, the workgroup-memory reduction takes any group): G is capped at
 * the subgroup size (the butterfly stays inside a subgroup), MQ keeps up to 128 channels of the query
 * in registers, at most 2 columns a lane (G * MQ <= 64, the staged query's 256 channels).
 */
export function rowsConstants(spec: RowsSpec, subgroupMin: number): { G: number; R: number; MQ: number } {
  const G = subgroupMin ? Math.max(4, Math.min(spec.lanes, subgroupMin)) : spec.lanes
  return { G, R: spec.rows, MQ: Math.min(2, Math.ceil(128 / (4 * G))) }
}

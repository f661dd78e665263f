import type { PagedKVCache } from '../cache/paged-cache.js'
import type { ExtensionHooks, PolicyContext, PolicyRuntime } from '../policies/types.js'
import { HookCapture } from './hooks.js'
import { nextTurn } from './next-turn.js'
import type { ModelConfig } from './types.js'
import type { Backend } from '../backend/backend.js'
import type { Weights } from './weights.js'
import type { RopeTables } from './rope.js'

/** What the runtime services need of the model (LlamaModel provides it). */
export interface RuntimeHost {
  readonly backend: Backend
  readonly config: ModelConfig
  readonly weights: Weights
  prefill(ids: ArrayLike<number>, cache: PagedKVCache, firstPosition: number, capture?: HookCapture, out?: Float32Array, first?: number): void
  /** `chunk`: the tokens prefill() runs through the forward pass at once */
  readonly forward: { readonly rope: Pick<RopeTables, 'fill'>; readonly chunk: number }
}

/** value rows pushed through the output projection a chunk at a time, so the buffers stay small */
const ROWS = 256

/**
 * The services a policy may call at prefill end (types.ts, PolicyRuntime), for one request: its cache
 * and the ids prefilled into it (positions 0..n-1). `check` throws once the request was aborted (or the
 * model disposed): `pause` calls it after each turn it yields.
 */
export function policyRuntime(host: RuntimeHost, cache: PagedKVCache, contextIds: readonly number[], ctx: () => PolicyContext, check: () => void = () => {}): PolicyRuntime {
  const next = contextIds.length
  const { hidden: H, headDim: d, group, qHeads } = host.config
  const heap = host.backend.heap
  const pause = async () => {
    await nextTurn()
    check()
  }
  // extend's bookkeeping: the heads' lengths before, the hook capture of the extra tokens, and the
  // cache put back as it was
  const { layers, kvHeads } = host.config
  const lengths = () => Array.from({ length: layers }, (_, l) => Array.from({ length: kvHeads }, (_, h) => cache.length(l, h)))
  const restore = (before: number[][]) =>
    cache.apply({ heads: before.flatMap((row, layer) => row.map((n, head) => ({ layer, head, keep: Int32Array.from({ length: n }, (_, i) => i) }))) })
  const extensionCapture = (T: number) => new HookCapture({ observationWindow: T, attentionInputNorms: true }, host.config, heap, T)
  const extensionHooks = (capture: HookCapture): ExtensionHooks[] =>
    capture.hooks.map((h) => ({ layer: h.layer, queries: h.observationQueries!, positions: h.observationPositions!, inputNorms: h.attentionInputNorms! }))
  return {
    contextIds,
    pause,
    ropeTables: (positions, cos, sin) => host.forward.rope.fill(positions, cos, sin),
    valueOutputNorms(layer, kvHead, values, p) {
      const n = values.length / d
      if (!Number.isInteger(n)) throw new RangeError(`valueOutputNorms: values hold ${values.length} floats, not a multiple of head_dim ${d}`)
      const out = new Float32Array(group * n)
      const wo = host.weights.layers[layer].o
      const wg = heap.allocF32(H * d)
      const x = heap.allocF32(ROWS * d)
      const y = heap.allocF32(ROWS * H)
      try {
        for (let g = 0; g < group; g++) {
          // W_o,g as [hidden][d]: the d columns of query head g in each row of o_proj's [hidden][qHeads x d]
          const col = (kvHead * group + g) * d
          for (let j = 0; j < H; j++) wg.view.set(heap.F32.subarray((wo >> 2) + j * qHeads * d + col, (wo >> 2) + j * qHeads * d + col + d), j * d)
          for (let s = 0; s < n; s += ROWS) {
            const T = Math.min(ROWS, n - s)
            x.view.set(values.subarray(s * d, (s + T) * d))
            host.backend.matmul(x.ptr, wg.ptr, 0, y.ptr, T, d, H)
            const Y = y.view
            for (let t = 0; t < T; t++) {
              let acc = 0
              for (let j = t * H; j < (t + 1) * H; j++) acc += p === 1 ? Math.abs(Y[j]) : Y[j] * Y[j]
              out[g * n + s + t] = p === 1 ? acc : Math.sqrt(acc)
            }
          }
        }
      } finally {
        y.free()
        x.free()
        wg.free()
      }
      return out
    },

    extend(ids, visit) {
      const before = lengths()
      const capture = extensionCapture(ids.length)
      try {
        host.prefill(ids, cache, next, capture)
        capture.finishPrefill()
        visit(extensionHooks(capture), ctx())
      } finally {
        capture.dispose()
        restore(before)
      }
    },

    async extendAsync(ids, visit) {
      const before = lengths()
      const T = ids.length
      const capture = extensionCapture(T)
      try {
        // prefill()'s own chunks, each its own call (the same arithmetic), with a turn between them:
        // one pass over a long context is as long as its prefill
        for (let s = 0; s < T; s += host.forward.chunk) {
          if (s > 0) await pause()
          host.prefill(ids.slice(s, s + host.forward.chunk), cache, next + s, capture, undefined, s)
        }
        capture.finishPrefill()
        await visit(extensionHooks(capture), ctx())
      } finally {
        capture.dispose()
        restore(before)
      }
    },
  }
}

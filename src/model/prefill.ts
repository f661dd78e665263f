import type { PagedKVCache } from '../cache/paged-cache.js'
import type { KeyStorage } from '../cache/types.js'
import type { KVDtype } from '../cache/formats.js'
import type { LayerHooks, PolicyNeeds } from '../policies/types.js'
import { ModelInputError } from './errors.js'
import type { HookCapture } from './hooks.js'

/** what a prefill's rows are laid out by: layers, KV heads and channels a head */
export interface PrefillShape {
  layers: number
  kvHeads: number
  headDim: number
}

const describeShape = (s: PrefillShape) => `${s.layers} layers x ${s.kvHeads} KV heads x ${s.headDim} channels`

/**
 * One prompt's prefill (all but its last token: the kvpress protocol generate follows; or its first
 * `contextTokens`, the context a question-after generation compresses alone), kept outside the
 * arena to start any number of generations from: the keys and values of every layer, and the hook data
 * the union of the policies' needs asked for. A prefill does not depend on the policy, so several
 * policies on one prompt (`evaluate`, comparisons) pay for it once; each generation copies the cache,
 * so they give the tokens a generation with its own prefill gives (test/eval-shared-prefill.test.ts).
 */
export class SharedPrefill {
  constructor(
    /** the whole prompt; the prefill holds all of it but the last token */
    readonly ids: readonly number[],
    /** what was captured: the union of the needs it was made for */
    readonly needs: PolicyNeeds,
    /** per layer, keys and values [T][kvHeads][headDim] as `PagedKVCache.append` takes them */
    private readonly kv: readonly { k: Float32Array; v: Float32Array }[],
    private readonly hooks: readonly LayerHooks[],
    /** wall time of the forward pass, ms */
    readonly ms: number,
    /** the element type of the cache it was made in (its keys and values are exactly that type's values); generations restore into the same */
    readonly kvDtype: KVDtype = 'float32',
    /** prompt tokens the prefill holds: all but the last, or fewer (`GenerateOptions.contextTokens`) */
    readonly contextTokens: number = ids.length - 1,
    /** the cache shape of the model that made it: a generation restores it into a cache of this shape only */
    readonly shape?: PrefillShape,
  ) {}

  /** The union of several policies' needs; their caches must store keys alike (all post-RoPE, or all pre-RoPE). */
  static unionNeeds(needs: readonly PolicyNeeds[]): PolicyNeeds {
    const keys = new Set(needs.map((n) => n.cacheKeys ?? 'post-rope'))
    if (keys.size > 1) throw new ModelInputError('SharedPrefill: policies that store keys pre-RoPE and post-RoPE cannot share a prefill')
    const out: PolicyNeeds = { cacheKeys: [...keys][0] ?? 'post-rope' }
    const window = Math.max(0, ...needs.map((n) => n.observationWindow ?? 0))
    if (window > 0) out.observationWindow = window
    if (needs.some((n) => n.prefillAttentionMass)) out.prefillAttentionMass = true
    if (needs.some((n) => n.hiddenStates)) out.hiddenStates = true
    if (needs.some((n) => n.preRopeKeys)) out.preRopeKeys = true
    return out
  }

  /** Takes the prefilled cache's contents and the capture's hooks (the cache can be disposed after). */
  static capture(ids: readonly number[], needs: PolicyNeeds, cache: PagedKVCache, capture: HookCapture, ms: number, contextTokens = ids.length - 1): SharedPrefill {
    const kv = Array.from({ length: cache.options.layers }, (_, l) => cache.readLayer(l))
    const { layers, kvHeads, headDim } = cache.options
    return new SharedPrefill(ids.slice(), needs, kv, capture.hooks, ms, cache.options.kvDtype, contextTokens, { layers, kvHeads, headDim })
  }

  get keyStorage(): KeyStorage {
    return this.needs.cacheKeys ?? 'post-rope'
  }

  /** Checks that this prefill serves a generation of `ids` by a policy with `needs`; throws ModelInputError naming what differs. */
  check(ids: readonly number[], needs: PolicyNeeds, contextTokens = ids.length - 1, model?: PrefillShape): void {
    const { shape } = this
    // rows of another shape would fail deep inside the cache once the generation ran
    if (shape && model && (shape.layers !== model.layers || shape.kvHeads !== model.kvHeads || shape.headDim !== model.headDim))
      throw new ModelInputError(`generate: the shared prefill was made by a model of ${describeShape(shape)}, this one has ${describeShape(model)}`)
    if (ids.length !== this.ids.length || ids.some((t, i) => t !== this.ids[i])) throw new ModelInputError('generate: the prompt differs from the one the shared prefill was made for')
    if (contextTokens !== this.contextTokens) throw new ModelInputError(`generate: the shared prefill holds ${this.contextTokens} prompt tokens, the generation compresses ${contextTokens} (contextTokens must match prefillPrompt's)`)
    const missing = [
      (needs.cacheKeys ?? 'post-rope') !== this.keyStorage && `keys stored ${needs.cacheKeys ?? 'post-rope'}`,
      (needs.observationWindow ?? 0) > (this.needs.observationWindow ?? 0) && `an observation window of ${needs.observationWindow}`,
      needs.prefillAttentionMass && !this.needs.prefillAttentionMass && 'the attention mass',
      needs.hiddenStates && !this.needs.hiddenStates && 'hidden states',
      needs.preRopeKeys && !this.needs.preRopeKeys && 'pre-RoPE keys',
    ].filter(Boolean)
    if (missing.length) throw new ModelInputError(`generate: the policy needs ${missing.join(', ')}, which the shared prefill did not capture; make it with this policy among its policies`)
  }

  /** Fills an empty cache with the prefill and hands `capture` this prefill's hooks cut to its own needs. */
  restore(cache: PagedKVCache, capture: HookCapture): void {
    const T = this.contextTokens
    const positions = Int32Array.from({ length: T }, (_, i) => i)
    this.kv.forEach(({ k, v }, l) => cache.append(l, k, v, positions))
    capture.adopt(this.hooks)
  }
}

import type { PagedKVCache } from '../cache/paged-cache.js'
import type { LlamaModel } from '../model/model.js'
import type { KVReuse } from '../model/types.js'
import { readLayers, type ChunkKV } from '../reuse/chunk-kv.js'
import type { AssembledContext } from '../reuse/context-handle.js'
import { KVShare, type KVShareOptions, type KVShareReport } from '../reuse/kvshare.js'
import type { PrefixCache } from '../reuse/prefix-cache.js'
import type { KVScheduler } from './scheduler.js'
import { PinnedStore } from './pinned-store.js'
import { onReuseClose } from './reuse-close.js'

/**
 * KVShare in `kvkit serve` (`--edit-reuse`): a full-cache request whose prompt the prefix cache covers
 * for less than half is matched against the prompts served before (one KVShare per cache_salt tenant);
 * when one aligns, the request runs on its aligned, partly recomputed KV (`match`). Otherwise it runs on
 * the prefix cache as usual, and its prompt's KV, exact (a full prefill from position 0), is kept for
 * later edits (`capturing`). Kept prompts are pinned in the KV budget and reclaimed when requests need it.
 */
export class EditReuse {
  private readonly shares = new Map<string, KVShare>()

  constructor(
    private readonly model: LlamaModel,
    private readonly prefixCache: PrefixCache,
    private readonly scheduler: KVScheduler,
    private readonly options: KVShareOptions,
  ) {
    // options are checked now, at server start, not at the first request
    this.share('')
  }

  private share(salt: string): KVShare {
    let s = this.shares.get(salt)
    if (!s) this.shares.set(salt, (s = new KVShare(this.model, { ...this.options, salt, store: new PinnedStore(this.scheduler) })))
    return s
  }

  /** the prompt's context (all but its last token) from an earlier prompt it edits, or undefined */
  async match(ids: readonly number[], salt: string): Promise<(AssembledContext & { report: KVShareReport }) | undefined> {
    const share = this.shares.get(salt)
    if (!share || share.requests === 0 || ids.length < 2) return undefined
    // the prefix cache reuses exactly what it covers: KVShare only where it covers less than half
    if (this.prefixCache.cachedPrefix(ids, salt) * 2 >= ids.length - 1) return undefined
    return share.match(ids.slice(0, -1))
  }

  /** prompt tokens a request may find: what the prefix cache covers, or more where an earlier prompt shares more (an upper bound) */
  expected(ids: readonly number[], salt: string): number {
    const prefix = this.prefixCache.cachedPrefix(ids, salt)
    const share = this.shares.get(salt)
    return share && prefix * 2 < ids.length - 1 ? Math.max(prefix, share.overlap(ids.slice(0, -1))) : prefix
  }

  /** `reuse` whose request, when it ends well, leaves its prompt's context KV to KVShare */
  capturing(reuse: KVReuse, salt: string): KVReuse {
    return onReuseClose(reuse, (h, generated, ok) => {
      try {
        // a prompt that cannot be kept (the budget has no room) is only not reusable: the request is unaffected
        if (ok && h.ids.length >= 2) this.share(salt).keep(promptRows(h.cache, h.ids.slice(0, -1))).catch(() => {})
      } finally {
        h.close(generated, ok)
      }
    })
  }
}

/** the first ids.length rows of every layer of a full cache (slots in token order), as a ChunkKV */
function promptRows(cache: PagedKVCache, ids: number[]): ChunkKV {
  const { k, v } = readLayers(cache)
  const floats = ids.length * cache.options.kvHeads * cache.options.headDim
  return { ids, k: k.map((a) => a.slice(0, floats)), v: v.map((a) => a.slice(0, floats)) }
}

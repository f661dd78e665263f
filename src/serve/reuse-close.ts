import type { KVReuse, ReuseHandle } from '../model/types.js'

/**
 * `reuse` with its handles' close replaced by `close(h, generated, ok)`, which must call `h.close` itself
 * (the server's hooks at a request's end: ToolPins' hold on the conversation, KVShare keeping the
 * prompt); everything else is the handle's own.
 */
export function onReuseClose(reuse: KVReuse, close: (h: ReuseHandle, generated: readonly number[], ok: boolean) => void): KVReuse {
  return {
    open: (ids, model) => {
      const h = reuse.open(ids, model)
      return {
        cache: h.cache, ids: h.ids, cachedTokens: h.cachedTokens, positionOffset: h.positionOffset,
        prefilled: (tokens) => h.prefilled(tokens),
        close: (generated, ok) => close(h, generated, ok),
        ...(h.afterStep ? { afterStep: h.afterStep.bind(h) } : {}),
      }
    },
  }
}

import type { LlamaModel } from '../src/model/model.js'
import { mergeNeeds } from '../src/policies/compose.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { Policy } from '../src/policies/types.js'

/**
 * What each policy keeps at prefill end of one `generate` over `promptIds`: per spec, [layer][KV head]
 * the kept positions (or, for channel pruning, the kept key channels). A recorder policy asks every
 * policy for its decision and applies none, so all of them see the same cache; each policy's `prepare`
 * is awaited first.
 */
export async function keptAtPrefillEnd(model: LlamaModel, promptIds: number[], policies: { spec: string; p: Policy }[]): Promise<Map<string, number[][][]>> {
  const kept = new Map<string, number[][][]>()
  const recorder: Policy = {
    ...statelessPolicy({
      name: 'record',
      needs: mergeNeeds(policies.map((x) => x.p)),
      // asynchronous: a policy's own prefill end may be (KVzip's reconstruction)
      async onPrefillEndAsync(ctx) {
        for (const { spec, p } of policies) {
          const s = p.start()
          const d = s.onPrefillEndAsync ? await s.onPrefillEndAsync(ctx) : s.onPrefillEnd!(ctx)
          const out = Array.from({ length: ctx.model.layers }, (_, l) => Array.from({ length: ctx.model.kvHeads }, (_, h) => Array.from(ctx.cache.positions(l, h))))
          for (const hd of d?.heads ?? []) {
            const pos = ctx.cache.positions(hd.layer, hd.head)
            out[hd.layer][hd.head] = hd.keyChannels ? Array.from(hd.keyChannels.channels) : Array.from(hd.keep, (i) => pos[i])
          }
          kept.set(spec, out)
        }
        return null
      },
    }),
    async prepare(m) {
      for (const { p } of policies) await p.prepare?.(m)
    },
  }
  await model.generate(promptIds, { policy: recorder, maxNewTokens: 1 }).result
  return kept
}

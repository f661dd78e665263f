/**
 * Token budgets under a byte budget when the kept rows are packed: MiKV's point (Yang et al. 2024, "No
 * Token Left Behind", section 3) that a token stored in a few bits costs far less than evicting it, taken
 * as an eviction budget. A head holding n tokens may spend `ratio` of their bytes in the cache's own
 * element type; every kept row but the newest (C mod G) is packed in KIVI's format (keys per channel along
 * G tokens, values per token along min(G, head_dim) channels, float16 scale and min per group: kivi.ts),
 * so it keeps the most tokens C whose bytes fit:
 *   floor(C / G) x G x P + (C mod G) x F  <=  ratio x n x F
 * P the packed bytes of one token's key and value rows (codes and group metadata, pages of G tokens), F
 * its float bytes (2 x head_dim x element bytes). At head_dim 64 and G = 128, a float16 token is 256
 * bytes, an int2 one 38 (14.8%), an int4 one 70 (27.3%).
 */
import { elementBytes, pageBytes, valueGroupFor, type KVDtype, type PageFormat } from '../cache/formats.js'

/** KIVI's largest key group: the fewest metadata bytes a token (section 4, table 6 of the paper) */
export const PACKED_GROUP = 128

/** bytes of one token's key and value rows packed in `format`, groups of `group` (per head) */
export function packedBytesPerToken(format: PageFormat, headDim: number, group = PACKED_GROUP): number {
  return (pageBytes(format, 'key', group, headDim, group) + pageBytes(format, 'value', group, headDim, valueGroupFor(group, headDim))) / group
}

/**
 * The most tokens (at least 1, at most n) one head of n tokens keeps within `ratio` of their float bytes
 * when all but the newest (C mod group) are packed in `format`.
 */
export function packedTokensPerHead(n: number, ratio: number, format: PageFormat, headDim: number, kvDtype: KVDtype, group = PACKED_GROUP): number {
  const F = 2 * headDim * elementBytes(kvDtype)
  const P = packedBytesPerToken(format, headDim, group)
  const bytes = ratio * n * F
  const cost = (c: number) => Math.floor(c / group) * group * P + (c % group) * F
  // cost is not monotone (a full group packs): search down from the packed bound
  for (let c = Math.min(n, Math.floor(bytes / P)); c > 1; c--) if (cost(c) <= bytes + 1e-9) return c
  return 1
}

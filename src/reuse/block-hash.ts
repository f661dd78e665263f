import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'
import { shownValue } from '../model/errors.js'
import { ReuseError } from './errors.js'

/**
 * Chained block hashes of a prompt, as vLLM's prefix caching keys its blocks: block b's hash is
 * SHA-256(hash of block b-1 || block b's token ids as little-endian uint32), and the chain starts from
 * SHA-256 of the tenant's salt, so equal blocks after equal prefixes of one tenant share a key and
 * another tenant's salt never matches (no probing a neighbour's prompts by timing). SHA-256 from
 * @noble/hashes: synchronous, the same in every runtime and process (no random seed), no `node:` import.
 */
export function blockHashes(ids: readonly number[], blockTokens: number, salt: string, blocks?: number): string[] {
  const n = checkBlockArgs(ids, blockTokens, salt, blocks)
  let parent = sha256(utf8ToBytes(`kvkit prefix v1\0${salt}`))
  const out: string[] = []
  const buf = new Uint8Array(32 + 4 * blockTokens)
  const view = new DataView(buf.buffer)
  for (let b = 0; b < n; b++) {
    buf.set(parent, 0)
    for (let i = 0; i < blockTokens; i++) {
      const id = ids[b * blockTokens + i]
      // setUint32 would hash undefined as 0, -1 as 4294967295 and 1.5 as 1: distinct prompts, one key
      if (!(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) throw new ReuseError(`blockHashes: ids[${b * blockTokens + i}] = ${shownValue(id)} is not a token id`)
      view.setUint32(32 + 4 * i, id, true)
    }
    parent = sha256(buf)
    out.push(bytesToHex(parent))
  }
  return out
}

/**
 * The number of blocks to hash (default: the whole blocks of ids), or a ReuseError naming the bad argument
 * before any hashing: a blockTokens of 0 made the default Infinity blocks, a loop that never ended.
 */
function checkBlockArgs(ids: readonly number[], blockTokens: number, salt: string, blocks: number | undefined): number {
  if (!Array.isArray(ids)) throw new ReuseError(`blockHashes: ids must be an array of token ids, got ${ids === null ? 'null' : typeof ids}`)
  if (typeof salt !== 'string') throw new ReuseError(`blockHashes: salt must be a string, got ${salt === null ? 'null' : typeof salt}`)
  if (blocks === undefined) {
    if (!(Number.isInteger(blockTokens) && blockTokens >= 1)) throw new ReuseError(`blockHashes: blockTokens must be a positive integer, got ${shownValue(blockTokens)}`)
    return Math.floor(ids.length / blockTokens)
  }
  // a whole chunk as one block (chunkKey) passes its length, 0 for an empty chunk, and blocks = 1
  if (!(Number.isInteger(blockTokens) && blockTokens >= 0)) throw new ReuseError(`blockHashes: blockTokens must be a non-negative integer, got ${shownValue(blockTokens)}`)
  if (!(Number.isInteger(blocks) && blocks >= 0 && blocks * blockTokens <= ids.length)) {
    throw new ReuseError(`blockHashes: blocks must be an integer in [0, ${blockTokens === 0 ? 'inf' : Math.floor(ids.length / blockTokens)}] (whole blocks of ${blockTokens} in ${ids.length} ids), got ${shownValue(blocks)}`)
  }
  return blocks
}

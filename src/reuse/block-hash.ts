import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js'

/**
 * Chained block hashes of a prompt, as vLLM's prefix caching keys its blocks: block b's hash is
 * SHA-256(hash of block b-1 || block b's token ids as little-endian uint32), and the chain starts from
 * SHA-256 of the tenant's salt, so equal blocks after equal prefixes of one tenant share a key and
 * another tenant's salt never matches (no probing a neighbour's prompts by timing). SHA-256 from
 * @noble/hashes: synchronous, the same in every runtime and process (no random seed), no `node:` import.
 */
export function blockHashes(ids: readonly number[], blockTokens: number, salt: string, blocks = Math.floor(ids.length / blockTokens)): string[] {
  let parent = sha256(utf8ToBytes(`kvkit prefix v1\0${salt}`))
  const out: string[] = []
  const buf = new Uint8Array(32 + 4 * blockTokens)
  const view = new DataView(buf.buffer)
  for (let b = 0; b < blocks; b++) {
    buf.set(parent, 0)
    for (let i = 0; i < blockTokens; i++) view.setUint32(32 + 4 * i, ids[b * blockTokens + i], true)
    parent = sha256(buf)
    out.push(bytesToHex(parent))
  }
  return out
}

/**
 * A stored chunk whose JSON header is damaged (or says something that is not a chunk's header) is a
 * ReuseError naming what is wrong, and FileChunkStore names the file, as for any other damage: a header
 * that did not parse was JSON.parse's SyntaxError (no path, not a ReuseError), and one without its token
 * ids decoded into a chunk whose ids were undefined, a TypeError at the first use.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { decodeChunk, encodeChunk } from '../src/reuse/chunk-codec.js'
import { ReuseError } from '../src/reuse/errors.js'
import { FileChunkStore } from '../src/node/file-chunk-store.js'

const kv = { ids: [5, 6], k: [new Float32Array([1, 2, 3, 4])], v: [new Float32Array([5, 6, 7, 8])] }

/** kv's bytes with the JSON header replaced by `header` (same length, spaces after it) */
function withHeader(header: string): Uint8Array {
  const bytes = encodeChunk(kv)
  const hl = new DataView(bytes.buffer).getUint32(8, true)
  expect(header.length).toBeLessThanOrEqual(hl)
  bytes.set(new TextEncoder().encode(header.padEnd(hl, ' ')), 12)
  return bytes
}

describe('a chunk with a damaged header', () => {
  it('a header that is not JSON: ReuseError saying so', () => {
    expect(() => decodeChunk(withHeader('{"tokens":2,'))).toThrow(ReuseError)
    expect(() => decodeChunk(withHeader('{"tokens":2,'))).toThrow('chunk bytes: the header is not JSON')
  })

  it('a header without its token ids, or with counts that are not counts: ReuseError naming the field', () => {
    expect(() => decodeChunk(withHeader('{"tokens":2,"layers":1,"rowFloats":2}'))).toThrow('chunk bytes: the header\'s ids must be 2 token ids')
    expect(() => decodeChunk(withHeader('{"tokens":2,"layers":1,"rowFloats":2,"ids":[5,"6"]}'))).toThrow(ReuseError)
    expect(() => decodeChunk(withHeader('{"tokens":-2,"layers":1,"rowFloats":2,"ids":[]}'))).toThrow('chunk bytes: the header\'s tokens must be a non-negative integer, got -2')
    expect(() => decodeChunk(withHeader('null'))).toThrow(ReuseError)
  })

  it('an intact chunk still decodes bit for bit', () => {
    const back = decodeChunk(encodeChunk(kv))
    expect(back.ids).toEqual(kv.ids)
    expect(back.k).toEqual(kv.k)
    expect(back.v).toEqual(kv.v)
  })

  it('FileChunkStore names the file of a chunk whose header is not JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-store-'))
    const key = 'a'.repeat(64)
    writeFileSync(join(dir, `${key}.kvc`), withHeader('{"tokens":2,'))
    const get = new FileChunkStore(dir).get(key)
    await expect(get).rejects.toThrow(ReuseError)
    await expect(new FileChunkStore(dir).get(key)).rejects.toThrow(`FileChunkStore: ${join(dir, `${key}.kvc`)}: chunk bytes: the header is not JSON`)
  })
})

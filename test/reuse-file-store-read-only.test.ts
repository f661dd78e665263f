/**
 * A FileChunkStore made { readOnly: true } serves a folder of precomputed chunks without writing to it:
 * the writable check (added with the folder checks) would refuse such a folder on a read-only mount or
 * owned by another user, where it served its hits before. A miss is computed for the request alone;
 * a read-only store's folder must exist, and options are checked by name and type.
 */
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import type { ChunkKV } from '../src/reuse/chunk-kv.js'
import { FileChunkStore } from '../src/node/file-chunk-store.js'
import { ReuseError } from '../src/reuse/errors.js'

const chunk: ChunkKV = { ids: [5, 6], k: [Float32Array.from([1, 2, 3, 4])], v: [Float32Array.from([5, 6, 7, 8])] }
const key = 'a'.repeat(64)
const other = 'b'.repeat(64)

describe('FileChunkStore, read-only', () => {
  it('reads the chunks the folder holds and stores nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-ro-'))
    await new FileChunkStore(dir).set(key, chunk)
    const ro = new FileChunkStore(dir, { readOnly: true })
    expect(ro.readOnly).toBe(true)
    const got = await ro.get(key)
    expect(got?.ids).toEqual([5, 6])
    expect(Array.from(got!.v[0])).toEqual([5, 6, 7, 8])
    await ro.set(other, chunk)
    expect(readdirSync(dir)).toEqual([`${key}.kvc`])
    expect(await ro.get(other)).toBeUndefined()
  })

  it('refuses a folder that does not exist, an unknown option and a readOnly that is not a boolean', () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'kvkit-ro-')), 'nothing-here')
    expect(() => new FileChunkStore(missing, { readOnly: true })).toThrow(ReuseError)
    expect(() => new FileChunkStore(missing, { readOnly: true })).toThrow(/cannot read folder .*nothing-here/)
    // a writable store still makes its folder at the first write
    expect(new FileChunkStore(missing).readOnly).toBe(false)
    expect(() => new FileChunkStore(tmpdir(), { readonly: true } as never)).toThrow(/unknown option "readonly" \(known: readOnly\)/)
    expect(() => new FileChunkStore(tmpdir(), { readOnly: 'yes' } as never)).toThrow(/readOnly must be a boolean, got string/)
    expect(() => new FileChunkStore(tmpdir(), null as never)).toThrow(/options must be an object, got null/)
  })
})

/**
 * Where the runtime has no file system (a browser: the check at createPolicy finds no node:fs and
 * passes), RazorAttention's calibrationFile is a PolicyFileError naming the file when the policy
 * prepares: it was nodeFs's plain Error. node:fs/promises is made unavailable here as in a browser.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createPolicy, PolicyFileError } from '../src/index.js'
import { loadModel } from '../src/node/index.js'
import { defaultModelDir } from '../src/eval/paths.js'

vi.mock('../src/backend/node-fs.js', () => ({
  nodeFs: async (what: string) => {
    throw new Error(`${what} needs a file system (Node, Bun or Deno): Cannot find module 'node:fs/promises'`)
  },
}))

const dir = mkdtempSync(join(tmpdir(), 'kvkit-razor-nofs-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a RazorAttention calibration file without a file system', () => {
  it('is a PolicyFileError naming the file, at prepare', async () => {
    const file = join(dir, 'calibration.txt')
    writeFileSync(file, 'The cat sat on the mat. '.repeat(20))
    const model = await loadModel(defaultModelDir(), { backend: 'reference', threads: 1 })
    try {
      const policy = createPolicy(`razorattention:budget=0.5,calibrationFile=${file}`, model.config)!
      const prepared = policy.prepare!(model)
      await expect(prepared).rejects.toBeInstanceOf(PolicyFileError)
      await expect(prepared).rejects.toThrow(`razorattention: cannot read calibrationFile ${JSON.stringify(file)}: a calibration file needs a file system`)
    } finally {
      model.dispose()
    }
  })
})

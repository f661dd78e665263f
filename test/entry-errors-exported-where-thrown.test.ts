/**
 * A typed error a public function throws can be caught by class from the entry the caller imported the
 * function from: GateFileError and NosaScoresFileError (a bad TRIM-KV gates or NOSA scores file, through
 * the root's createPolicy) and ThreadPoolError (a failed kernel worker) were exported from no entry; kvkit/node's loadModel threw ModelLoadError, kvkit/serve's serve
 * ModelInputError, and kvkit/eval's perplexity DecodingModeError, which only the root exported.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import * as root from '../src/index.js'
import * as node from '../src/node/index.js'
import * as evalEntry from '../src/eval/index.js'
import * as serveEntry from '../src/serve/index.js'
import { readModelFacts } from '../src/eval/model-facts.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-entry-errors-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const shape = readModelFacts('models/fixture-14m').shape
// the classes are looked up by name so that a missing export fails the test, not its compilation
const exported = (entry: object, name: string) => {
  const c = (entry as Record<string, unknown>)[name]
  expect(c, `${name} is exported`).toBeTypeOf('function')
  return c as new (...a: never[]) => Error
}

describe('errors are exported from the entry whose function throws them', () => {
  it('kvkit: a TRIM-KV gates file that is not JSON is a GateFileError, a PolicyFileError', () => {
    const gates = join(dir, 'gates.json')
    writeFileSync(gates, '{ not json')
    const make = () => root.createPolicy(`trimkv:budget=0.25,gatesFile=${gates}`, shape)
    expect(make).toThrow(exported(root, 'GateFileError'))
    expect(make).toThrow(root.PolicyFileError)
  })

  it('kvkit: a NOSA scores file that is not safetensors is a NosaScoresFileError', () => {
    const scores = join(dir, 'scores.safetensors')
    writeFileSync(scores, 'not safetensors')
    expect(() => root.createPolicy(`nosa:tokens=128,scoresFile=${scores}`, shape)).toThrow(exported(root, 'NosaScoresFileError'))
  })

  it('kvkit: ThreadPoolError is exported', () => {
    expect(exported(root, 'ThreadPoolError').name).toBe('ThreadPoolError')
  })

  it('kvkit/eval: perplexity of a masked diffusion LM is a DecodingModeError', async () => {
    const model = await node.loadModel('models/diffusion-14m', { backend: 'reference' })
    try {
      await expect((async () => evalEntry.perplexity(model, { books: [], length: 8, samples: 1 } as never))()).rejects.toThrow(exported(evalEntry, 'DecodingModeError'))
    } finally {
      model.dispose()
    }
  })

  it('kvkit/node: loadModel of a path that is not there is a ModelLoadError', async () => {
    await expect(node.loadModel(join(dir, 'absent'))).rejects.toThrow(exported(node, 'ModelLoadError'))
  })

  it('kvkit/serve: serve with a bad port is a ModelInputError', async () => {
    await expect((async () => serveEntry.serve(null as never, { port: -1 }))()).rejects.toThrow(exported(serveEntry, 'ModelInputError'))
  })

  it('the classes re-exported by kvkit/node, kvkit/serve and kvkit/eval are the root\'s (instanceof holds across entries)', () => {
    expect(exported(node, 'ModelLoadError')).toBe(root.ModelLoadError)
    expect(exported(node, 'ReuseError')).toBe(root.ReuseError)
    expect(exported(serveEntry, 'ModelInputError')).toBe(root.ModelInputError)
    expect(exported(serveEntry, 'DecodingModeError')).toBe(root.DecodingModeError)
    expect(exported(evalEntry, 'DecodingModeError')).toBe(root.DecodingModeError)
  })
})

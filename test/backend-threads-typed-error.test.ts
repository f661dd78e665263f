/**
 * A bad kernel thread count is refused with a typed error naming it, before any work: createBackend threw
 * a built-in RangeError (and checked `threads` on the wasm path only: the reference backend took 1.5, the
 * GPU probe compared '2' > 1, and 100000 started 99999 workers); it is now BackendOptionsError (a
 * RangeError still), exported from kvkit and kvkit/kernels. kvkit/node's loadModel refused a bad
 * KVKIT_THREADS with a built-in RangeError and a bad `threads` with ModelInputError, a class kvkit/node
 * did not export; evaluate passed the bad KVKIT_THREADS on as that RangeError.
 */
import { afterEach, describe, expect, it } from 'vitest'
import * as root from '../src/index.js'
import * as kernels from '../src/kernels.js'
import * as node from '../src/node/index.js'
import { EvalArgumentError, evaluate } from '../src/eval/index.js'

const MODEL = 'models/fixture-14m'
const saved = process.env.KVKIT_THREADS
afterEach(() => {
  if (saved === undefined) delete process.env.KVKIT_THREADS
  else process.env.KVKIT_THREADS = saved
})
const exported = (entry: object, name: string) => {
  const c = (entry as Record<string, unknown>)[name]
  expect(c, `${name} is exported`).toBeTypeOf('function')
  return c as new (...a: never[]) => Error
}

describe('a bad thread count is a typed error naming it', () => {
  it.each([
    ['wasm', 0, '0'], ['wasm', 2.5, '2.5'], ['wasm', 100_000, '100000'], ['wasm', '2', '"2"'],
    ['reference', 1.5, '1.5'], ['auto', Number.NaN, 'NaN'],
  ] as const)('createBackend(%j, { threads: %j }): BackendOptionsError, from kvkit and kvkit/kernels', async (name, threads, shown) => {
    const err = await root.createBackend(name, { threads: threads as number }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(exported(root, 'BackendOptionsError'))
    expect(err).toBeInstanceOf(exported(kernels, 'BackendOptionsError'))
    expect(err).toBeInstanceOf(RangeError)
    expect((err as Error).message).toBe(`createBackend: threads must be an integer in [1, 256], got ${shown}`)
  })

  it('createBackend: an unknown option or backend name is a BackendOptionsError too', async () => {
    await expect(root.createBackend('wasm', { thread: 4 } as never)).rejects.toThrow(exported(root, 'BackendOptionsError'))
    await expect(root.createBackend('gpu' as never)).rejects.toThrow(exported(root, 'BackendOptionsError'))
  })

  it('kvkit/node loadModel: a bad threads option or KVKIT_THREADS is a ModelInputError kvkit/node exports', async () => {
    const ModelInputError = exported(node, 'ModelInputError')
    await expect(node.loadModel(MODEL, { threads: 0 })).rejects.toThrow(ModelInputError)
    await expect(node.loadModel(MODEL, { threads: 0 })).rejects.toThrow('loadModel: threads must be an integer in [1, 256], got 0')
    process.env.KVKIT_THREADS = 'two'
    await expect(node.loadModel(MODEL)).rejects.toThrow(ModelInputError)
    await expect(node.loadModel(MODEL)).rejects.toThrow('KVKIT_THREADS must be an integer in [1, 256], got "two"')
    expect(() => node.nodeThreads()).toThrow(ModelInputError)
  })

  it('evaluate: a bad KVKIT_THREADS is an EvalArgumentError naming it, before any worker starts', async () => {
    process.env.KVKIT_THREADS = '0'
    const run = evaluate({ model: MODEL, policies: ['full'], tasks: ['passkey'], lengths: [256], samples: 1, workers: 1 })
    await expect(run).rejects.toBeInstanceOf(EvalArgumentError)
    await expect(run).rejects.toThrow('KVKIT_THREADS must be an integer in [1, 256], got "0"')
  })
})

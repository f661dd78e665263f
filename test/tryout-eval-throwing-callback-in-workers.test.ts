/**
 * evaluate on worker threads: an onProgress or onOutcome that throws rejects evaluate with that error and
 * stops the workers. It threw from the worker's message handler, an uncaught exception that ended the
 * whole process (the other workers still running), where the same callback on one thread rejects.
 */
import { describe, expect, it } from 'vitest'
import { evaluate } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

const base = { model: defaultModelDir(), policies: ['full'], tasks: ['passkey'], lengths: [128], samples: 2, workers: 2, threads: 1 }

describe('a callback that throws, samples on two workers', () => {
  it.each(['onProgress', 'onOutcome'] as const)('%s: evaluate rejects with its error', async (key) => {
    const mine = new Error(`${key} failed`)
    await expect(evaluate({ ...base, [key]: () => { throw mine } })).rejects.toBe(mine)
  }, 120_000)
})

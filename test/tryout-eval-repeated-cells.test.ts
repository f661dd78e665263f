/**
 * A policy, task or length given twice to the evaluation is refused before any work, naming it. It
 * used to run the cell twice and merge both runs into one row with twice the samples asked for (printed
 * twice): `kvkit eval --task passkey,passkey --samples 1` reported passkey with 2 samples.
 */
import { describe, expect, it } from 'vitest'
import { planEvaluation, EvalArgumentError } from '../src/eval/runner.js'
import { defaultModelDir } from '../src/eval/paths.js'

const base = { model: defaultModelDir(), policies: ['full', 'snapkv:budget=0.5'], tasks: ['passkey', 'vt'], lengths: [1024, 2048], samples: 1, seed: 7 }

describe('evaluation plan with a repeated cell', () => {
  it('a policy, task or length given twice: EvalArgumentError naming it', () => {
    const bad: [Partial<typeof base>, string][] = [
      [{ policies: ['full', 'snapkv:budget=0.5', 'full'] }, 'policy "full" is given twice'],
      // one setting written two ways: the same label, the same cells
      [{ policies: ['snapkv:budget=0.5', 'SnapKV: budget=0.5 '] }, 'policy "snapkv:budget=0.5" is given twice'],
      [{ tasks: ['passkey', 'vt', 'passkey'] }, 'task "passkey" is given twice'],
      [{ lengths: [1024, 2048, 1024] }, 'length 1024 is given twice'],
    ]
    for (const [o, msg] of bad) {
      const plan = () => planEvaluation({ ...base, ...o })
      expect(plan, msg).toThrow(EvalArgumentError)
      expect(plan, msg).toThrow(msg)
    }
  })

  it('distinct values still make one cell each', () => {
    const { cells } = planEvaluation(base)
    expect(new Set(cells.map((c) => `${c.policy}/${c.task}/${c.length}`)).size).toBe(cells.length)
    expect(cells).toHaveLength(2 * 2 * 2)
  })
})

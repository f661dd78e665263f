/**
 * A Sequence used while a generation runs on it says to wait: `fork()` during a generation was refused
 * with "a generation is running on this sequence; fork() it for another", telling the caller to do what
 * had just been refused (feed, commit and rollback said the same). A second generate is told it may run
 * on a fork made before the first.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { Sequence } from '../src/reuse/sequence.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()

describe('a Sequence while a generation runs on it', () => {
  it('fork, feed, commit, rollback: wait for it to end; generate: or a fork made before it', async () => {
    const seq = Sequence.create(fixture.model)
    await fixture.model.generate([0, 11, 12], { maxNewTokens: 2, reuse: seq }).result
    const running = fixture.model.generate([13], { maxNewTokens: 3, reuse: seq })
    const calls: [string, () => unknown][] = [
      ['fork', () => seq.fork()],
      ['feed', () => seq.feed([14])],
      ['commit', () => seq.commit()],
      ['rollback', () => seq.rollback(1)],
    ]
    for (const [what, call] of calls) {
      expect(call, what).toThrow(ReuseError)
      expect(call, what).toThrow(`Sequence.${what}: a generation is running on this sequence; wait for it to end`)
      expect(call, what).not.toThrow('fork() it')
    }
    expect(() => fixture.model.generate([14], { maxNewTokens: 2, reuse: seq })).toThrow(
      'Sequence.generate: a generation is running on this sequence; wait for it to end, or run the other on a fork() made before it',
    )
    await running.result
    expect(seq.fork().committed).toBe(seq.committed)
  })
})

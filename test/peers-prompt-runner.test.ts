/**
 * bench/peers' prompt runner: a peer's greedy ids on the eval's prompts, cut at end-of-sequence and
 * scored by kvkit's scorer, against hand-worked cases (a toy vocabulary of one character per id, a
 * fake peer that returns fixed ids).
 */
import { describe, expect, it } from 'vitest'
import { runPromptSamples, untilEos, type GreedyPeer } from '../bench/peers/prompt-runner.js'
import type { PromptSample } from '../src/eval/prompts-file.js'

// id i -> the i-th character; id 0 is end-of-sequence
const CHARS = '#0123456789 abcdefghijklmnopqrstuvwxyz.'
const text = (ids: number[]) => ids.map((i) => CHARS[i]).join('')
const ids = (s: string) => [...s].map((c) => CHARS.indexOf(c))

const sample = (task: 'passkey' | 'vt', index: number, answer: string, expected: string[]): PromptSample => ({
  task, index, length: 16, prompt_ids: ids('the key is'), answer, answer_ids: ids(answer), context_len: 4, expected,
})

/** a peer that answers each call with the next fixed ids, and records what it was asked */
function fakePeer(replies: number[][]): GreedyPeer & { asked: [number, number][] } {
  const asked: [number, number][] = []
  return {
    name: 'fake Q8_0', kvDtype: 'Q8_0', asked,
    greedy: async (prompt, n) => {
      asked.push([prompt.length, n])
      return { tokens: replies[asked.length - 1], prefillMs: 10, decodeMs: 6 * (replies[asked.length - 1].length - 1) }
    },
    kvBytes: (t) => 17 * t,
  }
}

describe('peers prompt runner', () => {
  it('cuts at the first end-of-sequence id', () => {
    expect(untilEos([5, 6, 0, 7, 0], [0])).toEqual([5, 6])
    expect(untilEos([5, 6], [0, 9])).toEqual([5, 6])
    expect(untilEos([9, 5], [0, 9])).toEqual([])
  })

  it('asks for answer + 3 tokens and scores the continuation before end-of-sequence', async () => {
    const samples = [sample('passkey', 0, ' 42.', ['42']), sample('vt', 1, ' a b', ['a', 'b'])]
    // passkey: right answer, then end-of-sequence, then junk the score must not see
    // vt: one of two expected values, and not the strict answer
    const peer = fakePeer([[...ids(' 42.'), 0, ...ids('99')].slice(0, 7), ids(' b zz.')])
    const seen: string[] = []
    const out = await runPromptSamples(peer, samples, text, [0], 100, (o) => seen.push(o.continuation))
    expect(peer.asked).toEqual([[10, 7], [10, 7]])
    expect(out.map((o) => [o.continuation, o.correct, o.score, o.newTokens])).toEqual([[' 42.', true, 1, 4], [' b zz.', false, 0.5, 6]])
    expect(seen).toEqual([' 42.', ' b zz.'])
    // bytes held: prompt (10) + every token the peer decoded (7 and 6)
    expect(out.map((o) => [o.kvBytes, o.kvBytesFull])).toEqual([[17 * 17, 100 * 17], [17 * 16, 100 * 16]])
    expect(out[0].decodeMsPerToken).toBe(6)
    expect(out.map((o) => [o.policy, o.task, o.index, o.kvDtype])).toEqual([['fake Q8_0', 'passkey', 0, 'Q8_0'], ['fake Q8_0', 'vt', 1, 'Q8_0']])
  })

  it('refuses a peer that returns more tokens than asked', async () => {
    const peer = fakePeer([ids(' 42. and more')])
    await expect(runPromptSamples(peer, [sample('passkey', 0, ' 42.', ['42'])], text, [0], 100)).rejects.toThrow(/asked for 7 tokens on passkey #0, got 13/)
  })
})

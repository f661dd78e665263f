/**
 * bench/peers-accuracy's table (`--table rows.jsonl,...`): rows of overlapping reruns count a sample once,
 * and "of full" divides by the full cache's accuracy on the samples the row has, so a partial run is not
 * measured against the whole set's full cache. Hand-computed case.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { printPeerTable, type PeerRow } from '../bench/peers-accuracy.js'

const row = (policy: string, task: string, index: number, correct: boolean): PeerRow =>
  ({ policy, task, index, question: 'with', correct, ruler: correct ? 1 : 0, text: '', kvBytes: 1, kvBytesFull: 4, compressMs: 0 })

afterEach(() => vi.restoreAllMocks())

describe('the peer accuracy table', () => {
  it('counts a sample read twice once and compares with the full cache on the same samples', () => {
    const lines: string[] = []
    vi.spyOn(console, 'log').mockImplementation((l: string) => void lines.push(l))
    const rows = [
      // the full cache: passkey 0-3 right, vt 0 and 1 right, 2 and 3 wrong
      ...[0, 1, 2, 3].map((i) => row('full', 'passkey', i, true)),
      ...[0, 1, 2, 3].map((i) => row('full', 'vt', i, i < 2)),
      // a partial run: passkey 0 right, vt 0 right, vt 2 wrong; then a rerun repeats passkey 0 as wrong
      row('lagkv:budget=0.125', 'passkey', 0, true), row('lagkv:budget=0.125', 'vt', 0, true), row('lagkv:budget=0.125', 'vt', 2, false),
      row('lagkv:budget=0.125', 'passkey', 0, false),
    ]
    printPeerTable(rows)
    const lag = lines.find((l) => l.startsWith('| `lagkv'))!
    // passkey 1/1, vt 1/2: mean 0.75; the full cache on those samples: passkey 1/1, vt 1/2 (vt 0 right, vt 2 wrong): 0.75
    expect(lag).toContain('| 1.00 | 0.50 | 0.75 | 100% | 1 / 2 |')
  })
})

import { describe, expect, it } from 'vitest'
import { runCli } from '../src/cli.js'
import { privatePasskey } from '../src/mpc/passkey.js'

describe('kvkit mpc: a private passkey query on the fixture model', () => {
  it('answers with the pass key while the attention over the cache runs on shares, and costs every step the same rounds', async () => {
    const lines: string[] = []
    const r = await privatePasskey({ model: 'models/fixture-14m', length: 96, method: 'mpcache', log: (s) => lines.push(s) })
    expect(r.correct).toBe(true)
    expect(r.continuation.trim().startsWith(r.answer.trim())).toBe(true)
    // the protocol's rounds depend only on shapes: no step reveals anything through its round count
    expect(new Set(r.steps.map((s) => s.cost.rounds)).size).toBe(1)
    expect(r.steps.every((s) => s.cost.bytesSent > 0 && s.offline1 > 0)).toBe(true)
    expect(lines.join('\n')).toMatch(/per operator, whole run/)
  })

  it('rejects a bad method or length with a usage error before loading the model', async () => {
    const err: string[] = []
    const write = process.stderr.write.bind(process.stderr)
    process.stderr.write = ((s: string) => (err.push(s), true)) as typeof process.stderr.write
    try {
      expect(await runCli(['mpc', '--method', 'nope'])).toBe(2)
      expect(await runCli(['mpc', '--length', '20'])).toBe(2)
    } finally {
      process.stderr.write = write
    }
    expect(err.join('')).toMatch(/--method must be mpcache or full, got "nope"/)
    expect(err.join('')).toMatch(/--length 20 is too short/)
  })
})

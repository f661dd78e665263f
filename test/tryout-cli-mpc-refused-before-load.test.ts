/**
 * `kvkit mpc` arguments it cannot run, refused with exit 2 naming them before the weights load:
 * - a masked diffusion model (Dream) as --model: the private decode is causal; the command loaded the
 *   weights and failed inside the prefill with exit 1 and the library's message for generate
 *   ("prefill: DreamModel is a masked diffusion LM ...").
 * - a --length under the passkey prompt's 64 tokens said the length was "beyond what the model supports".
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('kvkit mpc: refused before the weights load', () => {
  it.each([
    [['--model', 'models/diffusion-14m'], 'models/diffusion-14m is a masked diffusion LM (Dream): kvkit mpc decodes causally; use a causal model'],
    [['--length', '0'], '--length 0 is too short: the passkey prompt needs at least 64 tokens'],
    [['--length', '63'], '--length 63 is too short: the passkey prompt needs at least 64 tokens'],
    [['--length', '8193'], '--length 8193 is beyond what the model supports (max_position_embeddings 8192)'],
  ])('%j: exit 2 naming it', async (extra, message) => {
    const r = await cli('mpc', ...extra)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: ${message}\n`)
    expect(r.stdout).toBe('')
  })
})

/**
 * `--threads N` on generate, perplexity and serve (eval had it): the model's kernel threads, the same
 * output as one thread (the pool's results are one thread's bit for bit, test/threads-identical), and a
 * bad count is exit 2 naming it before any model loads.
 */
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

const MODEL = 'models/fixture-14m'

describe('kvkit generate, perplexity and serve take --threads', () => {
  it('generate on 2 threads prints what one thread prints', async () => {
    const run = (threads: string) => cli('generate', '--model', MODEL, '--prompt', 'It is a truth universally acknowledged', '--max-new-tokens', '8', '--policy', 'snapkv:budget=0.5', '--backend', 'wasm', '--threads', threads)
    const one = await run('1')
    const two = await run('2')
    expect(one.code).toBe(0)
    expect(two.code).toBe(0)
    expect(two.stdout).toBe(one.stdout)
    expect(one.stdout.trim().length).toBeGreaterThan(0)
    expect(one.stderr).toMatch(/; wasm-simd on 1 thread\n$/)
    expect(two.stderr).toMatch(/; wasm-simd on 2 threads\n$/)
  }, 120_000)

  it('perplexity on 2 threads equals one thread', async () => {
    const run = (threads: string) => cli('perplexity', '--model', MODEL, '--length', '64', '--samples', '2', '--backend', 'wasm', '--threads', threads)
    const one = await run('1')
    const two = await run('2')
    expect(one.code).toBe(0)
    expect(two.stdout).toBe(one.stdout)
    expect(one.stdout).toMatch(/^perplexity \d+\.\d\d \(2 samples of 64 tokens\)\n$/)
  }, 120_000)

  it.each([
    ['generate', '--prompt', 'x'],
    ['perplexity'],
    ['serve'],
  ])('%s --threads 0, 257, 1.5 and "" are exit 2 naming the value', async (command, ...rest) => {
    for (const bad of ['0', '257', '1.5', '']) {
      const r = await cli(command, '--model', MODEL, ...rest, '--threads', bad)
      expect(r.code, `${command} --threads ${JSON.stringify(bad)}`).toBe(2)
      expect(r.stderr).toBe(`kvkit: --threads must be an integer in [1, 256], got ${JSON.stringify(bad)}\n`)
    }
  })
})

import { spawn, spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { packageRoot } from '../src/eval/paths.js'

// `kvkit serve` as users start it: the built binary, a port of the system's choosing, SIGTERM to stop.
describe('kvkit serve on the command line', () => {
  it('serves the model, answers a chat request, and exits 0 on SIGTERM with nothing left open', async () => {
    const p = spawn(process.execPath, ['bin/kvkit.js', 'serve', '--model', 'models/fixture-14m', '--port', '0', '--parallel', '2'], { cwd: packageRoot() })
    let stderr = ''
    p.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise<number | null>((r) => p.on('exit', (code) => r(code)))
    try {
      for (let i = 0; i < 600 && !/on (http:\S+)\/v1/.test(stderr); i++) await new Promise((r) => setTimeout(r, 50))
      const url = /on (http:\S+)\/v1/.exec(stderr)![1]
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(stderr).toMatch(/chat template: chatml-fallback/)
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }
      expect(models.data[0].id).toBe('fixture-14m')
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'fixture-14m', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 4, temperature: 0 }),
      })
      const body = (await r.json()) as { choices: { finish_reason: string }[]; usage: { completion_tokens: number } }
      expect(r.status).toBe(200)
      expect(body.usage.completion_tokens).toBeGreaterThan(0)
    } finally {
      p.kill('SIGTERM')
    }
    const t0 = Date.now()
    expect(await exited, stderr).toBe(0)
    expect(Date.now() - t0).toBeLessThan(10_000)
  })

  it.each([
    [['serve'], /--model is required/],
    [['serve', '--model', 'models/fixture-14m', '--port', '70000'], /--port must be in \[0, 65535\]/],
    [['serve', '--model', 'models/fixture-14m', '--policy', 'snapkv:budget=9'], /budget/],
    [['serve', '--model', 'models/fixture-14m', '--kv-budget', '1000', '--cache-tokens', '1000'], /--cache-tokens \(1000\) must be less than --kv-budget \(1000\)/],
    [['serve', '--model', 'models/no-such-model'], /model folder not found/],
    [['serve', '--model', 'models/fixture-14m', '--scheduler', 'lifo'], /--scheduler must be fcfs, kvshare or program, got "lifo"/],
    [['serve', '--model', 'models/fixture-14m', '--scheduler', 'kvshare', '--aging-ms', '0'], /--aging-ms must be at least 1, got 0/],
    [['serve', '--model', 'models/fixture-14m', '--blend', 'yes'], /--blend must be on or off, got "yes"/],
    [['serve', '--model', 'models/fixture-14m', '--blend-ratio', '1.5'], /--blend-ratio must be a number in \[0, 1\], got "1.5"/],
    [['serve', '--model', 'models/fixture-14m', '--blend-ratio', 'half'], /--blend-ratio must be a number in \[0, 1\], got "half"/],
    [['serve', '--model', 'models/fixture-14m', '--blend', 'off', '--blend-ratio', '0.5'], /--blend-ratio needs --blend on/],
  ])('%j exits 2 with one line naming the bad argument', (args, message) => {
    const r = spawnSync(process.execPath, ['bin/kvkit.js', ...args], { cwd: packageRoot(), encoding: 'utf8', timeout: 60_000 })
    expect(r.status, r.stderr).toBe(2)
    expect(r.stderr).toMatch(message)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
  })
})

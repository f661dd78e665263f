/**
 * `kvkit policies | head -1`: a reader that closes stdout before the command is done ends the command
 * quietly with exit 0, as head's other writers (ls, grep) do. It was node's unhandled 'error' event: an
 * EPIPE stack trace on stderr and exit 1. The reader here closes its end before the command writes a line.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))

describe('kvkit with stdout closed by its reader', () => {
  it('`kvkit policies` into a closed pipe: exit 0, nothing on stderr', async () => {
    const child = spawn(process.execPath, ['bin/kvkit.js', 'policies'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.destroy()
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d))
    const code = await new Promise<number | null>((done) => child.on('close', done))
    expect(stderr).toBe('')
    expect(code).toBe(0)
  }, 60_000)
})

/** Runs the kvkit command in-process (runCli), capturing what it writes: its exit code, stderr and stdout. */
import { runCli } from '../src/cli.js'

export async function cli(...args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  let stderr = '', stdout = ''
  const err = process.stderr.write, out = process.stdout.write
  process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write
  process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write
  try {
    return { code: await runCli(args), stderr, stdout }
  } finally {
    process.stderr.write = err
    process.stdout.write = out
  }
}

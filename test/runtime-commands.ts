import { fileURLToPath } from 'node:url'

/** The repository root, where the runtimes' scripts run (cwd) and node_modules/.bin holds bun and deno. */
export const repoRoot = fileURLToPath(new URL('..', import.meta.url))

/**
 * [runtime, executable, args] running `script` under Node, Bun and Deno, for it.each: Deno gets
 * --no-prompt and the given permissions (a refused permission then fails instead of waiting for a tty).
 */
export function runtimeCommands(script: string, denoPermissions: string[]): [string, string, string[]][] {
  return [
    ['node', process.execPath, [script]],
    ['bun', `${repoRoot}node_modules/.bin/bun`, [script]],
    ['deno', `${repoRoot}node_modules/.bin/deno`, ['run', ...denoPermissions, '--no-prompt', script]],
  ]
}

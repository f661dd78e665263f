#!/usr/bin/env node
// The kvkit command: runs the compiled CLI (npm run build makes dist/).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const cli = new URL('../dist/src/cli.js', import.meta.url)
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('kvkit: dist/src/cli.js is missing; run `npm run build` first\n')
  process.exit(1)
}
// `kvkit policies | head -1`: a reader that stops reading ends the command quietly, as it ends ls or grep;
// without this node reports the write's EPIPE as an unhandled 'error' event, a stack trace and exit 1
process.stdout.on('error', (e) => {
  if (e.code !== 'EPIPE') throw e
  process.exit(0)
})
const { runCli } = await import(cli.href)
process.exitCode = await runCli(process.argv.slice(2))

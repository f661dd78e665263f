#!/usr/bin/env node
// The kvkit command: runs the compiled CLI (npm run build makes dist/).
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const cli = new URL('../dist/src/cli.js', import.meta.url)
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write('kvkit: dist/src/cli.js is missing; run `npm run build` first\n')
  process.exit(1)
}
const { runCli } = await import(cli.href)
process.exitCode = await runCli(process.argv.slice(2))

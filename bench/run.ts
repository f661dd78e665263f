// Runs every bench suite in this folder: kernels first, then the others in name order. A suite is a
// module bench/<name>.ts exporting `async function run(): Promise<void>` that prints its own lines.
// Files without that export (command-line scripts) are not imported at all: importing would run them.
import { readdir, readFile } from 'node:fs/promises'

const here = new URL('.', import.meta.url)
const files = (await readdir(here)).filter((f) => f.endsWith('.js') && f !== 'run.js')
files.sort((a, b) => Number(b === 'kernels.js') - Number(a === 'kernels.js') || a.localeCompare(b))
for (const file of files) {
  const url = new URL(file, here)
  if (!/export async function run\(/.test(await readFile(url, 'utf8'))) continue
  const suite = (await import(url.href)) as { run: () => Promise<void> }
  console.log(`\n=== ${file.replace(/\.js$/, '')} ===`)
  await suite.run()
}

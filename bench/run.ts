// Runs every bench suite in this folder: kernels first, then the others in name order. A suite is a
// module bench/<name>.ts exporting `run(): Promise<void>` that prints its own lines.
import { readdir } from 'node:fs/promises'

const here = new URL('.', import.meta.url)
const files = (await readdir(here)).filter((f) => f.endsWith('.js') && f !== 'run.js' && !f.includes('helpers'))
files.sort((a, b) => Number(b === 'kernels.js') - Number(a === 'kernels.js') || a.localeCompare(b))
for (const file of files) {
  const suite = (await import(new URL(file, here).href)) as { run?: () => Promise<void> }
  if (typeof suite.run !== 'function') continue
  console.log(`\n=== ${file.replace(/\.js$/, '')} ===`)
  await suite.run()
}

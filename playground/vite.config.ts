import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import { HAYSTACK_BOOK, haystackText } from './haystack.js'

const root = fileURLToPath(new URL('.', import.meta.url))
const pkg = fileURLToPath(new URL('..', import.meta.url))

/** `virtual:haystack`: the page's default text (haystack.ts) */
function haystack(): Plugin {
  return {
    name: 'kvkit-haystack',
    resolveId: (id) => (id === 'virtual:haystack' ? '\0virtual:haystack' : null),
    load(id) {
      if (id !== '\0virtual:haystack') return null
      return `export default ${JSON.stringify(haystackText(readFileSync(`${pkg}/${HAYSTACK_BOOK}`, 'utf8')))}`
    },
  }
}

/** `npm run build:playground`: playground/ -> dist-playground/ (relative URLs, so any folder can serve it) */
export default defineConfig({
  root,
  base: './',
  plugins: [haystack()],
  worker: { format: 'es' },
  build: { outDir: `${pkg}/dist-playground`, emptyOutDir: true, target: 'es2022', assetsInlineLimit: 0, reportCompressedSize: false },
  logLevel: 'warn',
})

import { builtinModules } from 'node:module'
import { build, type Plugin } from 'esbuild'
import { chromium, type Browser } from 'playwright-core'
import { serveStatic } from './static-server.js'

const NODE_BUILTIN = new RegExp(`^(node:.*|${builtinModules.map((m) => m.replace(/[/]/g, '\\/')).join('|')})$`)

/**
 * Bundles a kvkit entry for the browser with esbuild (ES module, minified off). Any import of a Node
 * builtin anywhere in the entry's module graph is recorded in `nodeImports` and fails the build.
 */
export async function bundleForBrowser(entry: string): Promise<{ code: string; nodeImports: string[]; errors: string[] }> {
  const nodeImports: string[] = []
  const refuseNode: Plugin = {
    name: 'refuse-node-builtins',
    setup(b) {
      b.onResolve({ filter: NODE_BUILTIN }, (args) => {
        nodeImports.push(`${args.path} (from ${args.importer})`)
        return { errors: [{ text: `Node builtin ${args.path} imported by ${args.importer}` }] }
      })
    },
  }
  try {
    const out = await build({
      entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false,
      logLevel: 'silent', plugins: [refuseNode],
    })
    return { code: out.outputFiles[0].text, nodeImports, errors: [] }
  } catch (e) {
    const errors = ((e as { errors?: { text: string }[] }).errors ?? [{ text: String(e) }]).map((x) => x.text)
    return { code: '', nodeImports, errors }
  }
}

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']

/**
 * Headless Chromium (Debian's) and a server of the root entry's bundle at /kvkit.js, a blank
 * /index.html, the fixture model at /model/ and the wasm builds at /build/; `close` stops both.
 */
export async function rootEntryInChromium(): Promise<{ browser: Browser; url: string; close: () => Promise<void> }> {
  const { code, errors } = await bundleForBrowser('src/index.ts')
  if (errors.length) throw new Error(`bundling the root entry failed: ${errors.join('; ')}`)
  const server = await serveStatic({ '/model/': 'models/fixture-14m', '/build/': 'build' }, { '/kvkit.js': code, '/index.html': '<!doctype html><title>kvkit</title>' })
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
  return { browser, url: server.url, close: async () => { await browser.close(); await server.close() } }
}

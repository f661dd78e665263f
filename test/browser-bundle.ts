import { builtinModules } from 'node:module'
import { build, type Plugin } from 'esbuild'

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

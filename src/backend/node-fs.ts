/**
 * node:fs/promises where the runtime has it (Node, Bun, Deno), for the few optional file reads of the
 * browser-safe entry (the default wasm build, a calibration text file). The specifier is a variable so
 * bundlers for the web leave it out of the module graph; in a browser the import fails with `what` named.
 */
export async function nodeFs(what: string): Promise<typeof import('node:fs/promises')> {
  const spec = 'node:fs/promises'
  try {
    return (await import(/* @vite-ignore */ spec)) as typeof import('node:fs/promises')
  } catch (e) {
    throw new Error(`${what} needs a file system (Node, Bun or Deno): ${(e as Error).message}`)
  }
}

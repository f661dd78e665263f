/** Files named by policy options are checked when the policy is created, not at first use. */
import { PolicyFileError } from './errors.js'

/** Throws PolicyFileError unless `path` is a readable regular file (where node:fs exists). */
export function checkReadableFile(what: string, path: string): void {
  const fs = (globalThis.process as { getBuiltinModule?: (id: string) => unknown } | undefined)?.getBuiltinModule?.('node:fs') as typeof import('node:fs') | undefined
  if (!fs) return
  let st: import('node:fs').Stats
  try {
    st = fs.statSync(path)
    fs.accessSync(path, fs.constants.R_OK)
  } catch (e) {
    throw new PolicyFileError(`${what} ${JSON.stringify(path)} cannot be read: ${(e as Error).message}`)
  }
  if (!st.isFile()) throw new PolicyFileError(`${what} ${JSON.stringify(path)} is not a regular file`)
}

/**
 * A model folder is untrusted input: every file the loader opens must be a regular file (a symlink is
 * followed, but one to /dev/zero, a FIFO or a directory is refused before it is opened, as reading
 * or even opening those can hang or exhaust memory).
 */
import { statSync } from 'node:fs'
import { ModelLoadError } from './errors.js'

/** the file's size in bytes, or ModelLoadError unless `path` is a regular file (after symlinks) */
export function regularFileSize(path: string): number {
  let st
  try {
    st = statSync(path)
  } catch (e) {
    throw new ModelLoadError(`cannot open ${path}: ${(e as Error).message}`)
  }
  if (!st.isFile()) {
    const kind = st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'not a regular file'
    throw new ModelLoadError(`${path} is ${kind}, not a regular file`)
  }
  return st.size
}

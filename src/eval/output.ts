/**
 * Writing the eval's outputs (the results JSON, the HTML report, a prompts file): a failure is an
 * EvalOutputError naming the path and why, not Node's bare ENOENT / EISDIR / EACCES, and a file the user
 * already has is replaced whole or not at all (the text goes to a new file beside it, renamed over it).
 */
import { chmodSync, closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** An eval output that cannot be written: the message names the path and the reason. */
export class EvalOutputError extends Error {
  override name = 'EvalOutputError'
}

// Node's codes in words: the message must say what is wrong with the path, not only the code
const REASONS: Readonly<Record<string, string>> = {
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of its path is a file, not a folder',
  EEXIST: 'a part of its path is a file, not a folder',
  ENOENT: 'a folder on its path does not exist',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  ENAMETOOLONG: 'the name is too long',
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code
  return (code !== undefined && REASONS[code]) ? `${REASONS[code]} (${code})` : (e as Error)?.message ?? String(e)
}

/** Checks an output path argument before any work: a non-empty string, else an EvalOutputError naming the value. */
export function checkOutputPath(path: unknown, what: string): string {
  if (typeof path !== 'string' || path.trim() === '') throw new EvalOutputError(`the ${what} path must be a non-empty string, got ${JSON.stringify(path) ?? String(path)}`)
  return path
}

/** Makes folder `dir` (and its parents) for outputs; EvalOutputError naming it where it cannot be made or is a file. */
export function makeOutputDir(dir: string, what: string): void {
  try {
    // mkdir's own word for a file in the way is EEXIST, which reads as if the folder were there
    if (existsSync(dir) && !statSync(dir).isDirectory()) throw Object.assign(new Error('not a folder'), { code: 'ENOTDIR' })
    mkdirSync(dir, { recursive: true })
  } catch (e) {
    throw new EvalOutputError(`cannot write the ${what} to ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOTDIR' && existsSync(dir) ? 'it exists and is not a folder' : reason(e)}`)
  }
}

/**
 * Writes `text` to `file` (its folders made): to a new file in the same folder, renamed over `file`, so
 * that a failed write (a full disk) leaves the file the user had as it was; where the folder takes no new
 * file but the file itself is writable, in place. Throws EvalOutputError naming `file` and why.
 */
export function writeOutputFile(file: string, text: string, what: string): void {
  try {
    // a link is followed: the file it names is replaced, the link stays
    const target = existsSync(file) && lstatSync(file).isSymbolicLink() ? realpathSync(file) : file
    if (existsSync(target) && statSync(target).isDirectory()) throw Object.assign(new Error('is a folder'), { code: 'EISDIR' })
    mkdirSync(dirname(target), { recursive: true })
    if (!replaceWhole(target, text)) writeFileSync(target, text)
  } catch (e) {
    if (e instanceof EvalOutputError) throw e
    throw new EvalOutputError(`cannot write the ${what} ${file}: ${reason(e)}`)
  }
}

/** writes a sibling and renames it over `file`; false where the folder refuses the sibling (the caller writes in place) */
function replaceWhole(file: string, text: string): boolean {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`)
  let fd: number
  try {
    fd = openSync(temp, 'wx')
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return false
    throw e
  }
  try {
    writeFileSync(fd, text)
    fsyncSync(fd)
    closeSync(fd)
    // the file keeps its permissions
    if (existsSync(file)) chmodSync(temp, statSync(file).mode & 0o7777)
    renameSync(temp, file)
    return true
  } catch (e) {
    try {
      closeSync(fd)
    } catch {
      // already closed
    }
    rmSync(temp, { force: true })
    throw e
  }
}

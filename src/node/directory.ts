import { open, stat, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelLoadError } from '../model/errors.js'
import { regularFileSize } from '../model/files.js'
import { ProgressCounter, type ModelFileSource, type SourceOptions } from '../model/source.js'
import { throwIfAborted } from '../model/abort.js'

/**
 * A model folder on the file system (Node, Bun, Deno). Files are opened on first use and read at
 * offsets, never whole: a shard of gigabytes goes straight into the arena chunk by chunk.
 */
export class DirectorySource implements ModelFileSource {
  private readonly handles = new Map<string, Promise<{ fh: FileHandle; size: number } | null>>()
  private readonly progress: ProgressCounter

  private constructor(readonly dir: string, private readonly opts: SourceOptions) {
    this.progress = new ProgressCounter(opts)
  }

  static async open(dir: string, opts: SourceOptions = {}): Promise<DirectorySource> {
    // only an absent path is "not found": a refused stat (Deno without --allow-read, EACCES) says why,
    // since the folder is there and the user has to grant access, not fix the path
    const st = await stat(dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return null
      throw new ModelLoadError(`cannot open ${dir}: ${e.message}`)
    })
    if (!st?.isDirectory()) throw new ModelLoadError(`model folder not found: ${dir}`)
    return new DirectorySource(dir, opts)
  }

  describe(name: string): string {
    return name === '' ? this.dir : join(this.dir, name)
  }

  private handle(name: string): Promise<{ fh: FileHandle; size: number } | null> {
    let h = this.handles.get(name)
    if (!h) {
      const path = this.describe(name)
      // a FIFO, a device or a directory is refused before it is opened (opening a FIFO blocks)
      h = stat(path)
        .then(() => regularFileSize(path), (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : regularFileSize(path)))
        .then((size) => (size === null ? null : open(path, 'r')))
        .then(
          async (fh) => (fh ? { fh, size: (await fh.stat()).size } : null),
          (e: NodeJS.ErrnoException) => {
            if (e instanceof ModelLoadError) throw e
            if (e.code === 'ENOENT') return null
            throw new ModelLoadError(`cannot open ${path}: ${e.message}`)
          },
        )
      this.handles.set(name, h)
    }
    return h
  }

  async size(name: string): Promise<number | null> {
    return (await this.handle(name))?.size ?? null
  }

  async read(name: string, position: number, into: Uint8Array): Promise<void> {
    throwIfAborted(this.opts.signal, 'model loading')
    const h = await this.handle(name)
    const path = this.describe(name)
    if (!h) throw new ModelLoadError(`cannot open ${path}: no such file`)
    let done = 0
    while (done < into.length) {
      const { bytesRead } = await h.fh.read(into, done, into.length - done, position + done)
      if (bytesRead <= 0) throw new ModelLoadError(`${path}: file ended after ${position + done} bytes while reading ${into.length} at ${position}`)
      done += bytesRead
    }
    this.progress.add(name, into.length, h.size)
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()]
    this.handles.clear()
    for (const h of all) await (await h.catch(() => null))?.fh.close()
  }
}

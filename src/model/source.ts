import { ModelLoadError } from './errors.js'
import { throwIfAborted } from './abort.js'
import { errorText } from './error-text.js'

/**
 * Where a model's files come from: a folder (kvkit/node), a base URL, or files the user picked. The
 * loader reads every file through this one interface, so one parser (safetensors.ts, fuzz-tested) serves
 * them all. Names are plain file names of a Hugging Face model folder (`config.json`,
 * `model-00001-of-00002.safetensors`).
 */
export interface ModelFileSource {
  /** how messages name a file of this source: a path or a URL */
  describe(name: string): string
  /** a file's size in bytes; null when the source has no file of that name */
  size(name: string): Promise<number | null>
  /** fills `into` with the file's bytes from byte `position` on; ModelLoadError when the file ends first */
  read(name: string, position: number, into: Uint8Array): Promise<void>
  /** releases what the source holds (open files, downloaded bytes); safe to call twice */
  close(): Promise<void>
}

/** Bytes of one file loaded so far, of its total, as loading goes. */
export interface LoadProgress {
  /** the file's name in the model folder */
  file: string
  /** bytes read (or downloaded) so far */
  loaded: number
  /** the file's size in bytes */
  total: number
}

/** What every source reports to and is stopped by. */
export interface SourceOptions {
  /** called as bytes arrive, per file */
  onProgress?: (p: LoadProgress) => void
  /** aborts the load: the promise rejects with the signal's reason and nothing stays allocated */
  signal?: AbortSignal
}

/** Files the user picked: name -> contents, a Map of the same, or File objects (named by `file.name`). */
export type ModelFiles = Record<string, Blob | ArrayBuffer | ArrayBufferView> | Map<string, Blob | ArrayBuffer | ArrayBufferView> | Iterable<File>

/** Per-file byte counts for onProgress, shared by the sources. */
export class ProgressCounter {
  private readonly loaded = new Map<string, number>()
  constructor(private readonly opts: SourceOptions) {}
  add(file: string, bytes: number, total: number): void {
    const loaded = Math.min(total, (this.loaded.get(file) ?? 0) + bytes)
    this.loaded.set(file, loaded)
    this.opts.onProgress?.({ file, loaded, total })
  }
}

/**
 * A source that reads a file's bytes on demand through `slice(name, begin, end)` (Blobs, or memory),
 * counting progress and checking the signal at each read.
 */
abstract class SlicedSource implements ModelFileSource {
  protected readonly progress: ProgressCounter
  constructor(protected readonly opts: SourceOptions) {
    this.progress = new ProgressCounter(opts)
  }
  abstract describe(name: string): string
  abstract size(name: string): Promise<number | null>
  protected abstract slice(name: string, begin: number, end: number): Promise<Uint8Array>
  async read(name: string, position: number, into: Uint8Array): Promise<void> {
    throwIfAborted(this.opts.signal, 'model loading')
    const size = await this.size(name)
    if (size === null) throw new ModelLoadError(`missing file: ${this.describe(name)}`)
    if (position + into.length > size) {
      throw new ModelLoadError(`${this.describe(name)}: file ended after ${size} bytes while reading ${into.length} at ${position}`)
    }
    into.set(await this.slice(name, position, position + into.length))
    this.countRead(name, into.length, size)
  }
  protected countRead(name: string, bytes: number, size: number): void {
    this.progress.add(name, bytes, size)
  }
  async close(): Promise<void> {}
}

const asBytes = (x: ArrayBuffer | ArrayBufferView): Uint8Array =>
  x instanceof ArrayBuffer ? new Uint8Array(x) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength)

/** Files the user picked (an `<input type=file multiple>`'s files, or name -> Blob/ArrayBuffer). */
export class FilesSource extends SlicedSource {
  private readonly files = new Map<string, Blob | Uint8Array>()
  constructor(files: ModelFiles, opts: SourceOptions = {}) {
    super(opts)
    const entries: [string, unknown][] =
      files instanceof Map ? [...files] : Symbol.iterator in Object(files) ? [...(files as Iterable<File>)].map((f) => [f?.name, f]) : Object.entries(files)
    for (const [name, v] of entries) {
      if (typeof name !== 'string' || name === '') throw new ModelLoadError(`model files: every file needs a name, got ${JSON.stringify(name)}`)
      if (typeof Blob !== 'undefined' && v instanceof Blob) this.files.set(name, v)
      else if (v instanceof ArrayBuffer || ArrayBuffer.isView(v)) this.files.set(name, asBytes(v))
      else throw new ModelLoadError(`model files: ${name} must be a Blob, File, ArrayBuffer or typed array, got ${Object.prototype.toString.call(v)}`)
    }
  }
  describe(name: string): string {
    return `${name} (picked file)`
  }
  /** the picked files' names */
  names(): string[] {
    return [...this.files.keys()]
  }
  async size(name: string): Promise<number | null> {
    const f = this.files.get(name)
    return f === undefined ? null : f instanceof Uint8Array ? f.length : f.size
  }
  protected async slice(name: string, begin: number, end: number): Promise<Uint8Array> {
    const f = this.files.get(name)!
    return f instanceof Uint8Array ? f.subarray(begin, end) : new Uint8Array(await f.slice(begin, end).arrayBuffer())
  }
}

/**
 * A model folder served over HTTP(S): `base` is the folder's URL (a Hugging Face hub
 * `https://huggingface.co/ORG/NAME/resolve/main/` works). Each file is downloaded once, streamed so
 * progress shows, and held until `close()`; a 404 is an absent file.
 */
export class UrlSource extends SlicedSource {
  private readonly base: URL
  private readonly downloads = new Map<string, Promise<Uint8Array | null>>()
  constructor(base: string | URL, opts: SourceOptions = {}) {
    super(opts)
    const href = String(base)
    this.base = new URL(href.endsWith('/') ? href : href + '/')
  }
  describe(name: string): string {
    return new URL(name, this.base).href
  }
  async size(name: string): Promise<number | null> {
    return (await this.download(name))?.length ?? null
  }
  protected async slice(name: string, begin: number, end: number): Promise<Uint8Array> {
    return (await this.download(name))!.subarray(begin, end)
  }
  /** downloads count as progress; reads from the downloaded bytes do not count again */
  protected override countRead(): void {}
  override async close(): Promise<void> {
    this.downloads.clear()
  }
  private download(name: string): Promise<Uint8Array | null> {
    let p = this.downloads.get(name)
    if (!p) {
      p = this.fetchFile(name)
      this.downloads.set(name, p)
      p.catch(() => this.downloads.delete(name))
    }
    return p
  }
  private async fetchFile(name: string): Promise<Uint8Array | null> {
    const url = this.describe(name)
    try {
      return await this.fetchBytes(name, url)
    } catch (e) {
      throwIfAborted(this.opts.signal, 'model loading')
      if (e instanceof ModelLoadError) throw e
      // Bun's fetch answers a missing file: URL with 200 and fails the body read with a bare ENOENT,
      // Deno's rejects, Node's cannot fetch file: at all; none reports an absent optional file as a 404
      const hint = url.startsWith('file:') ? "; for a folder on disk use loadModel from 'kvkit/node' (Node, Bun, Deno), which takes file: URLs" : ''
      throw new ModelLoadError(`cannot fetch ${url}: ${errorText(e)}${hint}`)
    }
  }
  private async fetchBytes(name: string, url: string): Promise<Uint8Array | null> {
    const res = await fetch(url, { signal: this.opts.signal })
    if (res.status === 404) return null
    if (!res.ok) throw new ModelLoadError(`fetch ${url}: HTTP ${res.status}`)
    const declared = Number(res.headers.get('content-length'))
    // a compressed response declares its compressed length: then the total is known only at the end
    const exact = Number.isSafeInteger(declared) && declared > 0 && !res.headers.get('content-encoding')
    if (!res.body) {
      const bytes = new Uint8Array(await res.arrayBuffer())
      this.progress.add(name, bytes.length, bytes.length)
      return bytes
    }
    const chunks: Uint8Array[] = []
    let loaded = 0
    const reader = res.body.getReader()
    for (;;) {
      throwIfAborted(this.opts.signal, 'model loading')
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      loaded += value.length
      this.progress.add(name, value.length, exact ? Math.max(declared, loaded) : loaded)
    }
    if (exact && loaded !== declared) throw new ModelLoadError(`${url}: got ${loaded} bytes, the server declared ${declared}`)
    const out = new Uint8Array(loaded)
    let at = 0
    for (const c of chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
}

/** Is this string a URL (scheme://...) rather than a folder path? */
export function isUrl(s: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || s.startsWith('blob:')
}

export function isFileSource(x: unknown): x is ModelFileSource {
  const s = x as ModelFileSource
  return !!s && typeof s === 'object' && typeof s.size === 'function' && typeof s.read === 'function' && typeof s.describe === 'function' && typeof s.close === 'function'
}

import { open, readdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { ModelLoadError } from '../model/errors.js'
import { EXPECTED_MODEL, fileStartKind } from '../model/file-kind.js'

/** the files of a Hugging Face model folder, which are not a model on their own */
const FOLDER_FILE = /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|model\.safetensors\.index)\.json$|\.safetensors$/

/**
 * Refuses, before any work, a file path that is not GGUF (loadModel reads any file path as GGUF, and a
 * folder's config.json was refused as "not a GGUF file", naming neither what was expected nor the
 * folder to pass): a ModelLoadError saying what the file is, what loadModel expects, and for a file of
 * a model folder, the folder to pass instead.
 */
export async function checkGgufPath(path: string): Promise<void> {
  const fh = await open(path, 'r').catch(() => null)
  // unreadable: the GGUF reader says why
  if (!fh) return
  const head = new Uint8Array(16)
  let n: number
  try {
    n = (await fh.read(head, 0, head.length, 0)).bytesRead
  } finally {
    await fh.close()
  }
  if (n >= 4 && new TextDecoder().decode(head.subarray(0, 4)) === 'GGUF') return
  const name = basename(path)
  const hint = FOLDER_FILE.test(name) ? `; ${name} is one file of a model folder: pass the folder, ${dirname(path)}` : ''
  throw new ModelLoadError(`${path} is not a GGUF file: it is ${fileStartKind(head.subarray(0, n))}. ${EXPECTED_MODEL}${hint}`)
}

/**
 * Refuses, before any work, a folder that lacks a file the loader needs (config.json, tokenizer.json,
 * the weights): a ModelLoadError naming the first missing file (as the loader would, "missing file:
 * PATH"), what loadModel expects, what the folder holds, and a .gguf file in it to pass instead.
 */
export async function checkModelFolder(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => null)
  // unreadable: the folder source says why
  if (!names) return
  const has = new Set(names)
  const missing = ['config.json', 'tokenizer.json'].find((f) => !has.has(f))
  const noWeights = !has.has('model.safetensors') && !has.has('model.safetensors.index.json')
  if (missing === undefined && !noWeights) return
  const what = missing !== undefined ? `missing file: ${join(dir, missing)}` : `${dir}: no model.safetensors or model.safetensors.index.json`
  const shown = names.sort().slice(0, 8)
  const holds = names.length === 0 ? 'it is empty' : `it holds ${shown.join(', ')}${names.length > shown.length ? `, and ${names.length - shown.length} more` : ''}`
  const gguf = names.find((f) => f.endsWith('.gguf'))
  const hint = gguf ? `; for its GGUF file pass the file, ${join(dir, gguf)}` : ''
  throw new ModelLoadError(`${what}. ${EXPECTED_MODEL}; ${holds}${hint}`)
}

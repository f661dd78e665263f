import { ModelLoadError } from './errors.js'
import type { ModelFileSource } from './source.js'

/** Small JSON files only: a config of many megabytes is not a config. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024

/** A JSON file of the model folder; undefined when absent and not required. */
export async function readJsonFile(source: ModelFileSource, name: string, required: boolean): Promise<unknown> {
  const path = source.describe(name)
  const size = await source.size(name)
  if (size === null) {
    if (required) throw new ModelLoadError(`missing file: ${path}`)
    return undefined
  }
  if (size > MAX_JSON_BYTES) throw new ModelLoadError(`${path}: ${size} bytes is above the ${MAX_JSON_BYTES}-byte limit for a JSON file`)
  const bytes = new Uint8Array(size)
  await source.read(name, 0, bytes)
  try {
    return JSON.parse(new TextDecoder().decode(bytes))
  } catch (e) {
    throw new ModelLoadError(`${path}: not valid JSON (${(e as Error).message})`)
  }
}

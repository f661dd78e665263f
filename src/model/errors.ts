/** A model folder that cannot be loaded: missing or malformed file, unsupported architecture or dtype. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError'
}

/** A bad argument to a loaded model (token out of range, bad generation option). */
export class ModelInputError extends Error {
  override name = 'ModelInputError'
}

/** A prompt (or prompt + new tokens) beyond the model's context (max_position_embeddings). */
export class ContextLengthError extends ModelInputError {
  override name = 'ContextLengthError'
}

/**
 * The context limit in force, as an error message names it: `max_position_embeddings N` from the config,
 * or `contextLimit N` where loadModel's option set it (above or below the trained length).
 */
export function contextLimitText(config: { maxPositions: number; trainedPositions?: number }): string {
  return config.trainedPositions === undefined ? `max_position_embeddings ${config.maxPositions}` : `contextLimit ${config.maxPositions}; max_position_embeddings ${config.trainedPositions}`
}

/**
 * The model was disposed: a call made after dispose(), or a generation running when it came (which stops
 * before touching freed memory).
 */
export class ModelDisposedError extends ModelInputError {
  override name = 'ModelDisposedError'
}

/** A forward pass produced NaN or infinite values; the message names the first layer where they appeared. */
export class NonFiniteError extends Error {
  override name = 'NonFiniteError'
}

/**
 * A decoding call the model's kind does not support: causal `generate` (or `prefillPrompt`) on a masked
 * diffusion LM, or `diffusionGenerate` on a causal LM. The message names the call to use instead.
 */
export class DecodingModeError extends ModelInputError {
  override name = 'DecodingModeError'
}

/**
 * A bad value as an error message shows it: numbers as written (NaN and Infinity, which JSON writes as
 * null), anything else as JSON, so a string is quoted ("4" given for 4 read "got 4", as if it were right)
 */
export function shownValue(v: unknown): string {
  if (typeof v === 'number') return String(v)
  if (typeof v === 'bigint') return `${v}n`
  return JSON.stringify(v) ?? String(v)
}

/**
 * What is wrong with an options argument, or undefined: not an object, or a key that is not in `known`
 * (a misspelt option, max_new_tokens or backnd, would otherwise be ignored and its default used,
 * silently). `known` is a record of every option name, typed by the options interface, so a new option
 * must be listed to compile; `shown` is the list the message offers (default: every known name).
 */
export function optionNamesProblem(options: unknown, known: Readonly<Record<string, true>>, shown: readonly string[] = Object.keys(known)): string | undefined {
  if (typeof options !== 'object' || options === null) return `options must be an object, got ${options === null ? 'null' : typeof options}`
  const unknown = Object.keys(options).find((k) => !Object.prototype.hasOwnProperty.call(known, k))
  return unknown === undefined ? undefined : `unknown option ${JSON.stringify(unknown)}; options: ${shown.join(', ')}`
}

/** A model folder that cannot be loaded: missing or malformed file, unsupported architecture or dtype. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError'
}

/** A bad argument to a loaded model (token out of range, bad generation option). */
export class ModelInputError extends Error {
  override name = 'ModelInputError'
}

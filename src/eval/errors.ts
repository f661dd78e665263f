/** A bad argument: the CLI prints its message as one line and exits non-zero. */
export class EvalArgumentError extends Error {
  override name = 'EvalArgumentError'
}

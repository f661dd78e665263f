/**
 * The errors a policy spec can raise at creation, one class per kind of mistake. All extend
 * PolicySpecError, so `catch (e) { if (e instanceof PolicySpecError) ... }` catches any bad spec.
 */

/** Any mistake in a policy spec or composition, found by createPolicy before any work starts. */
export class PolicySpecError extends Error {
  override name = 'PolicySpecError'
}

/** The spec string is malformed: empty, a bad name, an option without `=` or without a value. */
export class PolicySpecSyntaxError extends PolicySpecError {
  override name = 'PolicySpecSyntaxError'
}

/** No policy of that name is registered. */
export class UnknownPolicyError extends PolicySpecError {
  override name = 'UnknownPolicyError'
}

/** The policy has no option of that name. */
export class UnknownPolicyOptionError extends PolicySpecError {
  override name = 'UnknownPolicyOptionError'
}

/** An option value of the wrong type, out of range, not one of the choices, or a required option missing. */
export class PolicyOptionValueError extends PolicySpecError {
  override name = 'PolicyOptionValueError'
}

/** Options that exclude each other were both given. */
export class PolicyOptionConflictError extends PolicySpecError {
  override name = 'PolicyOptionConflictError'
}

/** A file an option names (gates, calibration text) cannot be read or parsed. */
export class PolicyFileError extends PolicySpecError {
  override name = 'PolicyFileError'
}

/** The parts of a composition `a+b` cannot work together. */
export class PolicyCompositionError extends PolicySpecError {
  override name = 'PolicyCompositionError'
}

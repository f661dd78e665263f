/**
 * The policy registry: policies by name, with typed options.
 *
 * HOW TO ADD A POLICY: write `src/policies/<name>.ts` exporting a
 * `PolicyDefinition` (see snapkv.ts for the pattern: name, description, stage, options, create), then add
 * it to the block of its kind in `src/policies/all.ts` (each block on its own lines, so merges never
 * touch the same ones). Policy files do not import this module (no import cycle);
 * the registry loads `all.ts` once. `registerPolicy(def)` adds a policy at run time (user extensions).
 *
 * Spec strings: `full`, `NAME`, `NAME:key=value,...`, compositions `a+b` (see spec.ts). Common options
 * come from budget.ts (`budgetOptions`: budget | tokens, every) and observe.ts (`observationOptions`).
 */
import type { ModelShape, Policy } from './types.js'
import { parsePolicySpec, parsePolicySpecs, type OptionValue, type ParsedSpec } from './spec.js'
import {
  PolicyCompositionError, PolicyFileError, PolicyOptionConflictError, PolicyOptionValueError, PolicySpecError,
  PolicySpecSyntaxError, UnknownPolicyError, UnknownPolicyOptionError,
} from './errors.js'
import { builtinPolicies } from './all.js'
import { composePolicies } from './compose.js'

export { parsePolicySpec, parsePolicySpecs }
export {
  PolicyCompositionError, PolicyFileError, PolicyOptionConflictError, PolicyOptionValueError, PolicySpecError,
  PolicySpecSyntaxError, UnknownPolicyError, UnknownPolicyOptionError,
}
export type { OptionValue, ParsedSpec }

/**
 * Where a policy runs in a composition: eviction first, then channel pruning, then quantization; dynamic
 * selection last (it picks per decode step among the tokens the others kept).
 */
export type PolicyStage = 'eviction' | 'channels' | 'quantization' | 'selection'
const STAGE_ORDER: Record<PolicyStage, number> = { eviction: 0, channels: 1, quantization: 2, selection: 3 }

export interface OptionSpec {
  name: string
  type: 'number' | 'integer' | 'boolean' | 'string'
  /** null: unset unless given */
  default: OptionValue | null
  description: string
  /** inclusive bounds, unless the matching *Exclusive flag is set */
  min?: number
  max?: number
  minExclusive?: boolean
  maxExclusive?: boolean
  /** allowed values of a string option */
  choices?: readonly string[]
  /** the default applies only when this other option is not given (budget vs tokens) */
  unlessGiven?: string
  /** giving both this and that option is an error */
  conflictsWith?: string
  /**
   * the value names a file read where the policy is made (gates, scores, calibration text): `kvkit serve`
   * refuses it in a request's `kv_policy`, where it would name a file on the server
   */
  readsFile?: boolean
}

export interface PolicyDefinition {
  name: string
  description: string
  stage: PolicyStage
  options: readonly OptionSpec[]
  /** options a policy once had that now belong elsewhere: name -> where (said in the error) */
  movedOptions?: Readonly<Record<string, string>>
  /**
   * Checks that need no model: a value the range cannot say (an odd pooling kernel, a bit width the
   * packer has) or options that exclude each other. resolveOptions runs it after types, ranges and
   * defaults (it gets the resolved options), so a typed factory refuses such a setting when it is
   * called, as a spec string is refused; a plain error becomes a PolicyOptionValueError. Checks against
   * the model's shape or files stay in create.
   */
  check?(options: Record<string, OptionValue>): void
  /** options are validated and defaults filled in (unset ones absent) before create is called */
  create(options: Record<string, OptionValue>, model: ModelShape): Policy
}

const registry = new Map<string, PolicyDefinition>()

/** Adds a policy by name; a second policy of the same name is an error. */
export function registerPolicy(def: PolicyDefinition): void {
  if (!def || typeof def.name !== 'string' || !/^[a-z_][a-z0-9_-]*$/.test(def.name))
    throw new PolicySpecError(`registerPolicy: name must be lowercase letters, digits, _ or -, got ${JSON.stringify(def?.name)}`)
  if (def.name === 'full') throw new PolicySpecError(`registerPolicy: "full" is reserved (the uncompressed cache)`)
  if (registry.has(def.name)) throw new PolicySpecError(`registerPolicy: a policy named ${def.name} is already registered`)
  // a malformed definition would otherwise fail later, untyped, at the first createPolicy or listPolicies
  const bad = (what: string, got: unknown) => new PolicySpecError(`registerPolicy: ${def.name}'s ${what}, got ${describeValue(got)}`)
  if (typeof def.description !== 'string') throw bad('description must be a string', def.description)
  if (!Object.prototype.hasOwnProperty.call(STAGE_ORDER, def.stage)) throw bad(`stage must be one of ${Object.keys(STAGE_ORDER).join(', ')}`, def.stage)
  if (typeof def.create !== 'function') throw bad('create must be a function', def.create)
  if (def.check !== undefined && typeof def.check !== 'function') throw bad('check must be a function', def.check)
  if (!Array.isArray(def.options)) throw bad('options must be an array of OptionSpec', def.options)
  const seen = new Set<string>()
  for (const o of def.options) {
    if (!o || typeof o.name !== 'string' || !['number', 'integer', 'boolean', 'string'].includes(o.type))
      throw bad('options must each have a name and a type (number, integer, boolean or string)', o)
    if (seen.has(o.name)) throw new PolicySpecError(`registerPolicy: ${def.name} lists option ${o.name} twice`)
    seen.add(o.name)
  }
  registry.set(def.name, def)
}

for (const def of builtinPolicies) registerPolicy(def)

export function listPolicies(): { name: string; description: string; options: { name: string; default: unknown; description: string }[] }[] {
  return [...registry.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((d) => ({ name: d.name, description: d.description, options: d.options.map((o) => ({ name: o.name, default: o.default, description: o.description })) }))
}

/** The definition of a registered policy (for help texts and tests). */
export function getPolicyDefinition(name: string): PolicyDefinition {
  const def = registry.get(name)
  if (!def) throw new UnknownPolicyError(`unknown policy ${JSON.stringify(name)}; known policies: full, ${[...registry.keys()].sort().join(', ')}`)
  return def
}

function describeOption(o: OptionSpec): string {
  let s = `${o.name} (${o.type}`
  if (o.choices) s += `: ${o.choices.join('|')}`
  if (o.min !== undefined || o.max !== undefined) s += `, ${o.min ?? '-inf'}${o.minExclusive ? ' <' : ' <='} x ${o.maxExclusive ? '<' : '<='} ${o.max ?? 'inf'}`
  return s + `, default ${o.default === null ? 'unset' : String(o.default)})`
}

/** Validates one policy's options against its definition; fills defaults. Errors name the bad value. */
export function resolveOptions(def: PolicyDefinition, given: Record<string, OptionValue>, written: Record<string, string> = {}): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {}
  const byName = new Map(def.options.map((o) => [o.name, o]))
  for (const key of Object.keys(given)) {
    if (!byName.has(key)) {
      const list = def.options.length ? def.options.map(describeOption).join('; ') : 'none'
      const moved = def.movedOptions?.[key]
      throw new UnknownPolicyOptionError(`policy ${def.name} has no option ${JSON.stringify(key)}${moved ? ` (${moved})` : ''}; its options: ${list}`)
    }
  }
  for (const o of def.options) {
    const v = key(given, o.name)
    if (v === undefined) {
      if (o.default !== null && !(o.unlessGiven && key(given, o.unlessGiven) !== undefined)) out[o.name] = o.default
      continue
    }
    if (o.conflictsWith && key(given, o.conflictsWith) !== undefined)
      throw new PolicyOptionConflictError(`${def.name}: options ${o.name}=${given[o.name]} and ${o.conflictsWith}=${given[o.conflictsWith]} exclude each other; give one`)
    out[o.name] = checkValue(def.name, o, o.type === 'string' && typeof written[o.name] === 'string' ? written[o.name] : v)
  }
  if (def.check) typedErrors(def, () => def.check!(out))
  return out
}

function key(given: Record<string, OptionValue>, name: string): OptionValue | undefined {
  return Object.prototype.hasOwnProperty.call(given, name) ? given[name] : undefined
}

function checkValue(policy: string, o: OptionSpec, v: OptionValue): OptionValue {
  // JSON would print NaN and Infinity as null, hiding the value that was refused
  const where = `${policy}: option ${o.name}=${typeof v === 'number' ? String(v) : JSON.stringify(v)}`
  if (o.type === 'boolean') {
    if (typeof v !== 'boolean') throw new PolicyOptionValueError(`${where} is not a boolean (use true or false); ${describeOption(o)}`)
    return v
  }
  if (o.type === 'string') {
    const s = String(v)
    if (o.choices && !o.choices.includes(s)) throw new PolicyOptionValueError(`${where} is not one of ${o.choices.join(', ')}`)
    return s
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PolicyOptionValueError(`${where} is not a number; ${describeOption(o)}`)
  if (o.type === 'integer' && !Number.isInteger(v)) throw new PolicyOptionValueError(`${where} is not an integer; ${describeOption(o)}`)
  const low = o.min !== undefined && (o.minExclusive ? v <= o.min : v < o.min)
  const high = o.max !== undefined && (o.maxExclusive ? v >= o.max : v > o.max)
  if (low || high) throw new PolicyOptionValueError(`${where} is out of range; ${describeOption(o)}`)
  return v
}

/** the options of a spec that name files to read (OptionSpec.readsFile), as `policy.option`; unknown names are left to createPolicy */
export function fileOptions(spec: string): string[] {
  return parsePolicySpecs(spec).flatMap((part) => {
    const def = registry.get(part.name)
    return def ? def.options.filter((o) => o.readsFile && part.options[o.name] !== undefined).map((o) => `${part.name}.${o.name}`) : []
  })
}

/**
 * Whether a policy scores every token from its hidden state when the token is created (TRIM-KV): it needs
 * hidden states and decides while decoding. Such a policy cannot take a question prefilled after
 * compression (`contextTokens`), whose tokens reach it without hidden states; generate() and evaluate()
 * refuse that pairing before any work.
 */
export function scoresTokensAtCreation(policy: Policy | null | undefined): boolean {
  return !!(policy?.needs?.hiddenStates && policy.traits?.decodes)
}

/**
 * A policy from its spec, or null for `full` (keep everything). Compositions run their parts in stage
 * order (eviction, channels, quantization), stable for parts of the same stage.
 */
export function createPolicy(spec: string, model: ModelShape): Policy | null {
  return createPolicyFromParts(parsePolicySpecs(spec), spec, model)
}

/**
 * The policy of parsed parts (a spec string's, or a typed factory's), or null for `full`: options go
 * through resolveOptions here whichever way they came, so strings and typed options share one check.
 */
export function createPolicyFromParts(parts: readonly ParsedSpec[], spec: string, model: ModelShape): Policy | null {
  if (parts.length === 1 && parts[0].name === 'full') {
    if (Object.keys(parts[0].options).length) throw new UnknownPolicyOptionError(`policy full takes no options, got ${Object.keys(parts[0].options).join(', ')}`)
    return null
  }
  if (parts.some((p) => p.name === 'full')) throw new PolicyCompositionError(`"full" cannot be composed with other policies in ${JSON.stringify(spec)}`)
  checkModel(model)
  const built = parts
    .map((p, i) => ({ def: getPolicyDefinition(p.name), p, i }))
    .sort((a, b) => STAGE_ORDER[a.def.stage] - STAGE_ORDER[b.def.stage] || a.i - b.i)
    .map(({ def, p }) => createChecked(def, resolveOptions(def, p.options, p.written), model))
  const policy = built.length === 1 ? built[0] : composePolicies(built)
  const { layers, qHeads, kvHeads, headDim, group, hidden } = model
  builtFor.set(policy, { layers, qHeads, kvHeads, headDim, group, hidden })
  return policy
}

/**
 * The model shape each policy createPolicy made was made for: its budgets, layer tables and trained
 * parts are sized by it, so on a model of another shape it would fail deep inside (a layer out of
 * range) or decide silently by the wrong table (PyramidKV's budgets of an 8-layer model on 4 layers).
 */
const builtFor = new WeakMap<Policy, ModelShape>()

/** Throws PolicySpecError when `policy` was made by createPolicy for a model of another shape than `model`. */
export function checkPolicyShape(policy: Policy, model: ModelShape): void {
  const made = builtFor.get(policy)
  if (!made) return
  const keys = ['layers', 'qHeads', 'kvHeads', 'headDim', ...(made.hidden !== undefined && model.hidden !== undefined ? ['hidden' as const] : [])] as const
  if (keys.every((k) => made[k] === model[k])) return
  const show = (m: ModelShape) => keys.map((k) => `${k} ${m[k]}`).join(', ')
  throw new PolicySpecError(`policy ${policy.name} was made for a model of ${show(made)}, this one has ${show(model)}: make it for this model (createPolicy(spec, model.config), or pass the spec or setting)`)
}

/** A definition's create, its errors typed as typedErrors says. */
function createChecked(def: PolicyDefinition, options: Record<string, OptionValue>, model: ModelShape): Policy {
  const policy = typedErrors(def, () => def.create(options, model))
  if (!policy || typeof policy !== 'object') throw new PolicySpecError(`policy ${def.name}: create returned ${describeValue(policy)}, not a Policy`)
  return policy
}

/** a value as JSON where it has a JSON form (for error messages), else as String gives it */
export function describeValue(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x)
  } catch {
    return String(x)
  }
}

/**
 * Runs a definition's check or create with a plain error raised by its own option checks turned into a
 * typed PolicyOptionValueError; typed errors (PolicyFileError for files it reads) pass unchanged.
 */
function typedErrors<T>(def: PolicyDefinition, run: () => T): T {
  try {
    return run()
  } catch (e) {
    if (e instanceof PolicySpecError) throw e
    const msg = e instanceof Error ? e.message : String(e)
    throw new PolicyOptionValueError(msg.startsWith(def.name) ? msg : `${def.name}: ${msg}`, { cause: e })
  }
}

function checkModel(m: ModelShape): void {
  for (const k of ['layers', 'qHeads', 'kvHeads', 'headDim', 'group'] as const) {
    if (!m || !Number.isInteger(m[k]) || m[k] <= 0) throw new PolicySpecError(`createPolicy: model.${k} must be a positive integer, got ${m ? m[k] : m}`)
  }
  if (m.qHeads !== m.kvHeads * m.group) throw new PolicySpecError(`createPolicy: model.qHeads (${m.qHeads}) must equal kvHeads (${m.kvHeads}) x group (${m.group})`)
}

/**
 * Policies as typed values: `snapkv({ budget: 0.25, window: 32 })` or `compose(snapkv(...), think(...))`
 * make a PolicyConfig, a plain description that `generate` (or `createPolicy`) turns into a policy for a
 * model. Its options are checked when it is made, by the same resolveOptions that checks spec strings, so
 * a mistake fails at the call that made it, with the message a spec string would get. `config.spec` is
 * the spec string of the same policy (for the CLI, reports and logs), and `policyFromSpec` reads one back.
 */
import { checkPolicyShape, createPolicyFromParts, describeValue, getPolicyDefinition, parsePolicySpecs, PolicySpecError, resolveOptions, UnknownPolicyOptionError, type OptionValue, type ParsedSpec } from './registry.js'
import type { ModelShape, Policy } from './types.js'

export interface PolicyConfig {
  readonly kind: 'kvkit.policy'
  /** the policies of this setting in the order given, each with the options given (defaults not filled in); none for `full` */
  readonly parts: readonly Readonly<ParsedSpec>[]
  /** the spec string of the same setting: `full`, `snapkv:budget=0.25,window=32`, `snapkv:budget=0.5+think:ratio=0.5` */
  readonly spec: string
}

export function isPolicyConfig(x: unknown): x is PolicyConfig {
  return !!x && typeof x === 'object' && (x as PolicyConfig).kind === 'kvkit.policy'
}

function formatValue(name: string, key: string, v: OptionValue): string {
  // a large number prints as 1e+21, whose + would split the spec; 1e21 reads back as the same number
  const s = typeof v === 'number' ? String(v).replace('e+', 'e') : String(v)
  // a value a spec string could not carry would not read back as the same setting: the parser splits
  // options at commas and policies at a + before a name, and trims values; = : and inner spaces are
  // read as written (a file path such as "C:/My Models/gates.safetensors")
  if (s.trim() === '' || s !== s.trim() || s.includes(',') || /\+(?=\s*[A-Za-z_])/.test(s))
    throw new PolicySpecError(`${name}: option ${key}=${JSON.stringify(v)} cannot be written in a spec string (no commas, no + before a letter, no spaces at either end)`)
  return s
}

function specOf(parts: readonly ParsedSpec[]): string {
  if (parts.length === 0) return 'full'
  return parts
    .map((p) => {
      const opts = Object.entries(p.options).map(([k, v]) => `${k}=${formatValue(p.name, k, v)}`)
      return opts.length ? `${p.name}:${opts.join(',')}` : p.name
    })
    .join('+')
}

function make(parts: ParsedSpec[]): PolicyConfig {
  return Object.freeze({ kind: 'kvkit.policy' as const, parts: Object.freeze(parts.map((p) => Object.freeze({ name: p.name, options: Object.freeze({ ...p.options }) }))), spec: specOf(parts) })
}

/**
 * One registered policy with typed options (the typed factories call this; user policies added with
 * registerPolicy may too). Throws PolicySpecError naming the bad option or value.
 */
export function policyConfig(name: string, options: object = {}): PolicyConfig {
  if (!options || typeof options !== 'object' || Array.isArray(options)) throw new PolicySpecError(`${name}: options must be an object, got ${JSON.stringify(options)}`)
  const given: Record<string, OptionValue> = {}
  for (const [k, v] of Object.entries(options)) if (v !== undefined) given[k] = v as OptionValue
  resolveOptions(getPolicyDefinition(name), given)
  return make([{ name, options: given }])
}

/**
 * The full cache: no compression (the same as passing no policy). Takes no options: any given is an
 * UnknownPolicyOptionError, as `full:budget=1` is (`full({ budget: 1 })` was the full cache, silently).
 */
export function full(): PolicyConfig {
  // read from `arguments`: the signature stays full(), and a JavaScript caller's options are still seen
  const given: unknown[] = Array.from(arguments)
  const extra = given.flatMap((o) => (o === undefined ? [] : typeof o === 'object' && o !== null && !Array.isArray(o) ? Object.keys(o) : [describeValue(o)]))
  if (extra.length) throw new UnknownPolicyOptionError(`policy full takes no options, got ${extra.join(', ')}`)
  return make([])
}

/**
 * Several policies on one cache, run in stage order (eviction, then channel pruning, then quantization),
 * e.g. `compose(snapkv({ budget: 0.5 }), think({ ratio: 0.5 }))`. `full()` cannot be composed. Parts
 * that cannot share a cache (two quantizers, two selections, ThinK after a part deciding while decoding)
 * are known only once built: generate or createPolicy refuses them (PolicyCompositionError).
 */
export function compose(...configs: PolicyConfig[]): PolicyConfig {
  if (configs.length === 0) throw new PolicySpecError('compose: give at least one policy')
  for (const c of configs) {
    if (!isPolicyConfig(c)) throw new PolicySpecError(`compose: every part must come from a policy factory (snapkv(...), think(...)), got ${JSON.stringify(c)}`)
    if (c.parts.length === 0) throw new PolicySpecError('compose: "full" cannot be composed with other policies')
  }
  return make(configs.flatMap((c) => c.parts.map((p) => ({ name: p.name, options: { ...p.options } }))))
}

/** The PolicyConfig of a spec string (`full`, `NAME:key=value,...`, `a+b`), checked as the factories check. */
export function policyFromSpec(spec: string): PolicyConfig {
  const parts = parsePolicySpecs(spec)
  if (parts.length === 1 && parts[0].name === 'full') {
    if (Object.keys(parts[0].options).length) throw new PolicySpecError(`policy full takes no options, got ${Object.keys(parts[0].options).join(', ')}`)
    return full()
  }
  // string options as written: heads=1.10 (layer 1, head 10) read as the number 1.1 would be head 1
  return compose(...parts.map((p) => policyConfig(p.name, asWritten(p))))
}

/** a parsed part's options, string-typed ones in their written form */
function asWritten(p: ParsedSpec): Record<string, OptionValue> {
  const options = { ...p.options }
  for (const o of getPolicyDefinition(p.name).options) if (o.type === 'string' && p.written?.[o.name] !== undefined) options[o.name] = p.written[o.name]
  return options
}

/** A policy for `model` from a typed setting, a spec string, or an already built policy; null for full. */
export function resolvePolicy(policy: PolicyConfig | Policy | string | null | undefined, model: ModelShape): Policy | null {
  if (policy === null || policy === undefined) return null
  if (typeof policy === 'string') return createPolicyFromParts(parsePolicySpecs(policy), policy, model)
  if (isPolicyConfig(policy)) return policy.parts.length === 0 ? null : createPolicyFromParts(policy.parts, policy.spec, model)
  // a plain options object ({ budget: 0.25 }) would otherwise fail deep inside the prefill, untyped
  const built = policy as Partial<Policy> | null
  if (!built || typeof built !== 'object' || typeof built.start !== 'function' || typeof built.name !== 'string' || !built.needs || typeof built.needs !== 'object')
    throw new PolicySpecError(`policy must be a spec string, a setting from a policy factory (snapkv({ budget: 0.25 })) or a built Policy (name, needs, start()), got ${describeValue(policy)}`)
  checkPolicyShape(policy, model)
  return policy
}

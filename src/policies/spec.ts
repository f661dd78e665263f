/**
 * Policy spec strings: `full`, `NAME`, `NAME:key=value,key=value`, and compositions `a+b` (applied in
 * stage order: eviction, then channel pruning, then quantization).
 */

import { PolicySpecError, PolicySpecSyntaxError } from './errors.js'

export { PolicySpecError }

export type OptionValue = number | string | boolean

export interface ParsedSpec {
  name: string
  /** values typed as written: numbers, true/false, else strings */
  options: Record<string, OptionValue>
  /**
   * each option's value exactly as written (trimmed), so a string option keeps `1.10` or `0.1;3.0`
   * instead of the number they also parse as (not enumerable: records compare by `options` alone)
   */
  readonly written?: Record<string, string>
}

/** Splits a composition at `+` signs that start a new policy name (so `1e+3` stays one value). */
export function splitComposition(spec: string): string[] {
  return spec.split(/\+(?=\s*[A-Za-z_])/).map((s) => s.trim())
}

/** A value as written: numbers become numbers, true/false booleans, anything else stays a string. */
function parseValue(raw: string): OptionValue {
  const s = raw.trim()
  if (s === 'true') return true
  if (s === 'false') return false
  if (s !== '' && /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return Number(s)
  return s
}

/** Parses one policy of a spec (no `+`). */
export function parseSinglePolicySpec(spec: string): ParsedSpec {
  const s = spec.trim()
  if (s === '') throw new PolicySpecSyntaxError(`policy spec is empty (expected NAME or NAME:key=value,...)`)
  const colon = s.indexOf(':')
  const name = (colon < 0 ? s : s.slice(0, colon)).trim().toLowerCase()
  if (!/^[a-z_][a-z0-9_-]*$/.test(name)) throw new PolicySpecSyntaxError(`policy name ${JSON.stringify(name)} in spec ${JSON.stringify(spec)} is malformed`)
  const options: Record<string, OptionValue> = {}
  const written: Record<string, string> = {}
  if (colon >= 0) {
    const body = s.slice(colon + 1).trim()
    if (body !== '') {
      for (const pair of body.split(',')) {
        const eq = pair.indexOf('=')
        if (eq < 0) throw new PolicySpecSyntaxError(`option ${JSON.stringify(pair.trim())} in spec ${JSON.stringify(spec)} is not key=value`)
        const key = pair.slice(0, eq).trim()
        if (key === '') throw new PolicySpecSyntaxError(`option ${JSON.stringify(pair.trim())} in spec ${JSON.stringify(spec)} has no name`)
        if (Object.prototype.hasOwnProperty.call(options, key)) throw new PolicySpecSyntaxError(`option ${key} appears twice in spec ${JSON.stringify(spec)}`)
        const raw = pair.slice(eq + 1)
        if (raw.trim() === '') throw new PolicySpecSyntaxError(`option ${key} in spec ${JSON.stringify(spec)} has an empty value`)
        // defineProperty: a key such as __proto__ stays a plain (unknown) option name
        Object.defineProperty(options, key, { value: parseValue(raw), enumerable: true, writable: true, configurable: true })
        Object.defineProperty(written, key, { value: raw.trim(), enumerable: true, writable: true, configurable: true })
      }
    }
  }
  const parsed: ParsedSpec = { name, options }
  Object.defineProperty(parsed, 'written', { value: written, enumerable: false })
  return parsed
}

/** Every policy of a (possibly composed) spec, in the order written. */
export function parsePolicySpecs(spec: string): ParsedSpec[] {
  if (typeof spec !== 'string') throw new PolicySpecSyntaxError(`policy spec must be a string, got ${typeof spec}`)
  const parts = splitComposition(spec)
  if (parts.length === 1) return [parseSinglePolicySpec(parts[0])]
  return parts.map((part, i) => {
    try {
      return parseSinglePolicySpec(part)
    } catch (e) {
      // a part alone ("snapkv+" of "snapkv++think") is not what the user wrote: name the whole spec too
      if (e instanceof PolicySpecSyntaxError) throw new PolicySpecSyntaxError(`${e.message} (part ${i + 1} of ${parts.length} of the composition ${JSON.stringify(spec)})`)
      throw e
    }
  })
}

/**
 * Parses a spec. For a composition `a:x=1+b:y=2` the name is `a+b` and the options are prefixed by their
 * policy (`a.x`, `b.y`), so a composed spec still reads back as one record (for labels and reports).
 */
export function parsePolicySpec(spec: string): ParsedSpec {
  const parts = parsePolicySpecs(spec)
  if (parts.length === 1) return parts[0]
  const options: Record<string, OptionValue> = {}
  for (const p of parts) for (const [k, v] of Object.entries(p.options)) options[`${p.name}.${k}`] = v
  return { name: parts.map((p) => p.name).join('+'), options }
}

import { parsePolicySpecs } from '../policies/spec.js'

/**
 * Short labels for policy settings: the policy's name and its budget (`snapkv 25%`, `streamingllm 512
 * tok`), and when one policy appears in several settings that differ beyond the budget, a letter per
 * variant (`snapkv B 25%`) that the legend spells out. Reports show the label and give the full spec on
 * hover and in the legend, so a long spec never sets a column's width.
 */
export interface PolicyLabel {
  /** `snapkv B 25%` */
  label: string
  /** the label without its budget: settings of one family differ only in budget (`snapkv B`) */
  familyLabel: string
  /** the spec without budget or tokens (`snapkv:window=16,share=model`) */
  family: string
  spec: string
}

/** the spec without its budget options: the budgets of one setting form a family */
export function specFamily(spec: string): string {
  return spec
    .split('+')
    .map((part) => {
      const at = part.indexOf(':')
      if (at < 0) return part
      const kept = part.slice(at + 1).split(',').filter((o) => o && !/^\s*(budget|tokens)\s*=/.test(o))
      return kept.length ? `${part.slice(0, at)}:${kept.join(',')}` : part.slice(0, at)
    })
    .join('+')
}

function budgetText(spec: string): string {
  const out: string[] = []
  for (const p of parsePolicySpecs(spec)) {
    const b = p.options.budget
    const t = p.options.tokens
    if (typeof b === 'number') out.push(`${+(b * 100).toFixed(2)}%`)
    else if (typeof t === 'number') out.push(`${t} tok`)
  }
  return out.join(' ')
}

export function policyLabels(specs: readonly string[]): Map<string, PolicyLabel> {
  const families = [...new Set(specs.map(specFamily))]
  const nameOf = (family: string): string => parsePolicySpecs(family).map((p) => p.name).join('+')
  const stems = new Map<string, string>()
  for (const name of new Set(families.map(nameOf))) {
    const variants = families.filter((f) => nameOf(f) === name)
    // the first setting of a policy keeps the bare name; the others get B, C, ... (AA after Z)
    variants.forEach((f, i) => stems.set(f, i === 0 ? name : `${name} ${letters(i)}`))
  }
  return new Map(specs.map((spec) => {
    const family = specFamily(spec)
    const familyLabel = stems.get(family)!
    const budget = budgetText(spec)
    return [spec, { spec, family, familyLabel, label: budget ? `${familyLabel} ${budget}` : familyLabel }]
  }))
}

function letters(i: number): string {
  let s = ''
  for (let n = i; n >= 0; n = Math.floor(n / 26) - 1) s = String.fromCharCode(65 + (n % 26)) + s
  return s
}

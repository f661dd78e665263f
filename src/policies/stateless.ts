/**
 * Policies that decide from the prompt alone (one decision at prefill end, nothing carried between
 * steps) write their callbacks once; every request still gets its own session object.
 */
import type { Policy, PolicyNeeds, PolicySession, PolicyTraits } from './types.js'

export interface StatelessPolicy extends PolicySession {
  name: string
  needs: PolicyNeeds
  traits?: PolicyTraits
}

export function statelessPolicy(p: StatelessPolicy): Policy {
  const { name, needs, traits, ...session } = p
  return { name, needs, traits, start: () => ({ ...session }) }
}

/**
 * PyramidKV (Cai et al. 2024, "PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information
 * Funneling"): SnapKV's scores, but the budget of layer l falls linearly from the lowest layer to the
 * highest (top layer: 1/beta of the average above the window); the total over layers is unchanged.
 * (kvpress's version falls back to a flat budget when its bounds do not hold, as on small models;
 * here the schedule always applies.)
 */
import { budgetFrom, budgetOptions, pyramidLayerBudgets } from './budget.js'
import { compensateOption, evictionPolicy } from './evict.js'
import { checkObservationOptions, observationOptions } from './observe.js'
import type { PolicyDefinition } from './registry.js'
import { sinkOption, snapScorer } from './snapkv.js'

export const pyramidkv: PolicyDefinition = {
  name: 'pyramidkv',
  description: 'PyramidKV: SnapKV scores with a layer budget falling linearly from the lowest to the highest layer',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption, ...observationOptions, sinkOption,
    { name: 'beta', type: 'number', default: 20, min: 1, description: 'the top layer keeps 1/beta of the average budget above the window' }],
  check: checkObservationOptions,
  create(o, model) {
    const window = o.window as number
    return evictionPolicy(() => ({
      name: 'pyramidkv', budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, ...snapScorer(o, model),
      layerBudgets: (perHead) => pyramidLayerBudgets(model.layers, perHead, Math.min(window, perHead), o.beta as number),
    }))
  },
}

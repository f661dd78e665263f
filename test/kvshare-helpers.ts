import { seededRandom } from '../src/model/sampling.js'

// What the KVShare tests share: pseudo-random tokens (different seeds share few tokens; an arithmetic
// progression would be shifts of one), a cached context of 160 tokens and a question of 7.
export const words = (n: number, seed: number): number[] => {
  const r = seededRandom(seed)
  return Array.from({ length: n }, () => 2 + Math.floor(r() * 4000))
}
export const cached = [0, ...words(159, 1)]
export const question = words(7, 9)

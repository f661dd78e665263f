import type { Rng } from './prng.js'

/**
 * The RULER-style retrieval tasks the fixture model was trained on, word for word as in
 * models/fixture-14m/train.py: each makes needles (inserted into the haystack in order), a question and
 * the expected answer. `expected` lists the values RULER's finer score looks for.
 */
export interface TaskInstance {
  needles: string[]
  question: string
  answer: string
  expected: string[]
}

export type TaskName = 'passkey' | 'niah_single' | 'niah_multikey' | 'niah_multivalue' | 'vt' | 'kv'

export const TASK_NAMES: readonly TaskName[] = ['passkey', 'niah_single', 'niah_multikey', 'niah_multivalue', 'vt', 'kv']

export function isTaskName(name: string): name is TaskName {
  return (TASK_NAMES as readonly string[]).includes(name)
}

const magicNeedle = (k: string, v: string): string => ` One of the special magic numbers for ${k} is: ${v}.`
const magicQuestion = (k: string): string => `What is the special magic number for ${k} mentioned in the provided text?`
const magicAnswer = (k: string, v: string): string => ` The special magic number for ${k} mentioned in the provided text is ${v}.`

/** a 7-digit number */
const magicNumber = (rng: Rng): string => String(rng.randrange(1000000, 9999999))
/** 5 digits */
const passkeyNumber = (rng: Rng): string => String(rng.randrange(10000, 99999))
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0')
const uuidLike = (rng: Rng): string => `${hex(rng.getrandbits(32), 8)}-${hex(rng.getrandbits(16), 4)}`

type Generator = (rng: Rng, words: readonly string[]) => TaskInstance

const GENERATORS: Record<TaskName, Generator> = {
  niah_single(rng, words) {
    const k = rng.choice(words)
    const v = magicNumber(rng)
    return { needles: [magicNeedle(k, v)], question: magicQuestion(k), answer: magicAnswer(k, v), expected: [v] }
  },
  niah_multikey(rng, words) {
    const keys = rng.sample(words, rng.randint(2, 6))
    const values = keys.map(() => magicNumber(rng))
    const j = rng.randrange(0, keys.length)
    return {
      needles: keys.map((k, i) => magicNeedle(k, values[i])),
      question: magicQuestion(keys[j]),
      answer: magicAnswer(keys[j], values[j]),
      expected: [values[j]],
    }
  },
  niah_multivalue(rng, words) {
    const k = rng.choice(words)
    const n = rng.randint(2, 4)
    const values = Array.from({ length: n }, () => magicNumber(rng))
    return {
      needles: values.map((v) => magicNeedle(k, v)),
      question: `What are all the special magic numbers for ${k} mentioned in the provided text?`,
      answer: ` The special magic numbers for ${k} mentioned in the provided text are: ${values.join(', ')}.`,
      expected: values,
    }
  },
  passkey(rng) {
    const p = passkeyNumber(rng)
    return {
      needles: [` The pass key is ${p}. Remember it. ${p} is the pass key.`],
      question: 'What is the pass key?',
      answer: ` The pass key is ${p}.`,
      expected: [p],
    }
  },
  vt(rng) {
    const n = rng.randint(2, 4)
    const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'
    const names = Array.from({ length: n }, () => Array.from({ length: 5 }, () => letters[rng.randrange(0, letters.length)]).join(''))
    const v = passkeyNumber(rng)
    const needles = [` VAR ${names[0]} = ${v}.`, ...names.slice(1).map((name, i) => ` VAR ${name} = VAR ${names[i]}.`)]
    return {
      needles,
      question: `Find all variables that are assigned the value ${v} in the text above.`,
      answer: ` Answer: According to the chain(s) of variable assignment in the text above, ${n} variables are assigned the value ${v}, they are: ${names.join(' ')}.`,
      expected: names,
    }
  },
  kv(rng) {
    const n = rng.randint(4, 12)
    const pairs = Array.from({ length: n }, () => [uuidLike(rng), uuidLike(rng)] as const)
    const [a, b] = pairs[rng.randrange(0, n)]
    return {
      needles: pairs.map(([k, v]) => ` Key "${k}" has value "${v}".`),
      question: `What is the value associated with key "${a}"?`,
      answer: ` The value associated with key "${a}" is "${b}".`,
      expected: [b],
    }
  },
}

export function makeTask(task: TaskName, rng: Rng, words: readonly string[]): TaskInstance {
  return GENERATORS[task](rng, words)
}

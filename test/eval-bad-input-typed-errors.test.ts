/**
 * kvkit/eval's public functions refuse bad input with its EvalArgumentError naming the value, before any
 * work: diffusionCacheFromSpec passed on the policies' PolicySpecSyntaxError and the model's
 * ModelInputError (classes kvkit/eval does not export) and threw a bare Error for a causal policy name;
 * rulerScore([]) a bare Error; readModelFacts, loadWordList, PromptBuilder.build and EvalSession.open bare
 * Errors, and build with an unknown task "GENERATORS[task] is not a function"; a PromptBuilder with no
 * books or words failed at build, inside the random generator ("randrange: empty range [0, 0)"); strictCorrect,
 * renderReport and resultsJson given a non-string or no results list threw TypeErrors.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { diffusionCacheFromSpec, EvalArgumentError, PromptBuilder, renderReport, resultsJson, rulerScore, strictCorrect } from '../src/eval/index.js'
import { readModelFacts } from '../src/eval/model-facts.js'
import { loadWordList } from '../src/eval/words.js'
import { loadBooks } from '../src/eval/text.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'
import { EvalSession } from '../src/eval/session.js'
import type { TaskName } from '../src/eval/tasks.js'
import { fixtureTokenizer } from './eval-helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'kvkit-eval-typed-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
const words = loadWordList(defaultWordsFile())
const builder = new PromptBuilder({ tokenizer: fixtureTokenizer(), bosId: 0, books: loadBooks(defaultBooksDir()), words })

/** expects f to throw an EvalArgumentError whose message matches `message` */
function refused(f: () => unknown, message: RegExp): void {
  let thrown: unknown
  try {
    f()
  } catch (e) {
    thrown = e
  }
  expect(thrown).toBeInstanceOf(EvalArgumentError)
  expect((thrown as Error).message).toMatch(message)
}

describe('kvkit/eval: bad input is an EvalArgumentError naming the value', () => {
  it('diffusionCacheFromSpec: a causal policy, bad syntax, a bad option value or a non-string spec', () => {
    refused(() => diffusionCacheFromSpec('snapkv:budget=0.5'), /elastic-cache.*got "snapkv:budget=0\.5"/)
    refused(() => diffusionCacheFromSpec('elastic-cache:gamma'), /"elastic-cache:gamma".*not key=value/)
    refused(() => diffusionCacheFromSpec('elastic-cache:gamma=2'), /"elastic-cache:gamma=2".*gamma must be a number in \[0, 1\], got 2/)
    refused(() => diffusionCacheFromSpec('elastic-cache:windowSize=8'), /unknown option "windowSize"/)
    refused(() => diffusionCacheFromSpec(7 as never), /must be a string, got 7/)
    expect(diffusionCacheFromSpec('elastic-cache:gamma=0.5')).toMatchObject({ kind: 'elastic-cache', gamma: 0.5 })
  })

  it('rulerScore: no expected values, or not a list of strings', () => {
    refused(() => rulerScore('x', []), /expected must be a non-empty list of strings.*got \[\]/)
    refused(() => rulerScore('x', '123' as never), /got "123"/)
    refused(() => rulerScore(undefined as never, ['1']), /continuation must be a string, got undefined/)
  })

  it('strictCorrect, renderReport and resultsJson: a non-string, a results list that is not one (were TypeErrors from .trim / .map / .split)', () => {
    refused(() => strictCorrect(undefined as never, 'x'), /strictCorrect: continuation must be a string, got undefined/)
    refused(() => strictCorrect('x', 5 as never), /strictCorrect: answer must be a string, got 5/)
    refused(() => renderReport(null as never), /renderReport: results must be a list of EvalResult.*got null/)
    refused(() => resultsJson({} as never), /resultsJson: results must be a list of EvalResult.*got \{\}/)
    refused(() => renderReport([{ policy: 'full', task: 'passkey' }] as never), /renderReport: results\[0\] is not an EvalResult.*"policy":"full"/)
    refused(() => resultsJson([null] as never), /resultsJson: results\[0\] is not an EvalResult.*got null/)
  })

  it('readModelFacts: a missing folder, no config.json, a bad field', () => {
    refused(() => readModelFacts(join(dir, 'absent')), /model folder not found: .*absent/)
    refused(() => readModelFacts(dir), /has no config\.json/)
    const bad = join(dir, 'bad-config')
    rmSync(bad, { recursive: true, force: true })
    const cfg = JSON.parse(readFileSync('models/fixture-14m/config.json', 'utf8'))
    mkdirSync(bad)
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 0 }))
    refused(() => readModelFacts(bad), /num_hidden_layers is 0, expected a positive integer/)
  })

  it('loadWordList: a missing file or too few words', () => {
    refused(() => loadWordList(join(dir, 'no-words.txt')), /cannot read word list .*no-words\.txt/)
    const few = join(dir, 'few.txt')
    writeFileSync(few, 'apple\nbread\n')
    refused(() => loadWordList(few), /word list .*few\.txt has 2 words/)
  })

  it('PromptBuilder.build: an unknown task, a length that is no positive integer, too short, or a haystack that cannot fill it', () => {
    refused(() => builder.build('passkeys' as TaskName, 1024, 1, 0), /unknown task "passkeys"/)
    refused(() => builder.build('passkey', 1.5, 1, 0), /length must be a positive integer.*got 1\.5/)
    refused(() => builder.build('kv', 60, 1, 0), /length 60 is too short for task kv/)
    const long = Array.from({ length: 3000 }, (_, i) => words[i % words.length]).join(' ') + '.'
    const oneLong = new PromptBuilder({ tokenizer: fixtureTokenizer(), bosId: 0, books: [{ name: 'long', sentences: [long, long] }], words })
    refused(() => oneLong.build('passkey', 1024, 1, 0), /the haystack filled 0 of the \d+ tokens/)
  })

  it('new PromptBuilder: no books, a book without sentences, too few words, a bad bosId or tokenizer', () => {
    const tokenizer = fixtureTokenizer()
    const books = loadBooks(defaultBooksDir())
    const make = (o: object) => () => new PromptBuilder({ tokenizer, bosId: 0, books, words, ...o } as never)
    // these were "randrange: empty range [0, 0)", "undefined is not iterable" and "choice from an empty list", at build
    refused(make({ books: [] }), /books must be a non-empty list of books \(loadBooks\), got an empty list/)
    refused(make({ books: [{ name: 'blank', sentences: [] }] }), /book "blank" has no sentences/)
    refused(make({ words: [1, 2] }), /words must be a list of non-empty strings/)
    refused(make({ words: 'abc' }), /words must be a list of non-empty strings.*got "abc"/)
    // a niah task draws its keys from the words; passkey needs none (the playground's builder has none)
    refused(() => new PromptBuilder({ tokenizer, bosId: 0, books, words: [] }).build('niah_single', 300, 1, 0), /task niah_single draws its keys from the words, which need at least 10 entries.*got 0/)
    expect(new PromptBuilder({ tokenizer, bosId: 0, books, words: [] }).build('passkey', 300, 1, 0).promptIds.length).toBeGreaterThan(0)
    refused(make({ bosId: -1 }), /bosId must be a token id \(a non-negative integer\), got -1/)
    refused(make({ tokenizer: {} }), /tokenizer must have an encode\(text\) method/)
  })

  it('EvalSession.open: a model naming neither a BOS nor an EOS token', async () => {
    const model = join(dir, 'no-bos')
    mkdirSync(model)
    const src = resolve('models/fixture-14m')
    for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']) symlinkSync(join(src, f), join(model, f))
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(src, f), join(model, f))
    const { bos_token_id: _b, eos_token_id: _e, ...cfg } = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'))
    writeFileSync(join(model, 'config.json'), JSON.stringify(cfg))
    const open = EvalSession.open({ model, backend: 'reference' })
    await expect(open).rejects.toBeInstanceOf(EvalArgumentError)
    await expect(open).rejects.toThrow(/names neither a BOS nor an EOS token/)
  })
})

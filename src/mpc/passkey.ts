/**
 * `kvkit mpc`: a private passkey query on a kvkit model, end to end (Node: it reads the model and the
 * haystack books from disk). The prompt is prefilled in the clear, its KV cache split into shares, and
 * every answer token is decoded with private attention (private-decode.ts says what is secret-shared);
 * prints the answer and the cost table.
 */
import { loadModel } from '../node/load.js'
import { PromptBuilder } from '../eval/prompt.js'
import { loadBooks } from '../eval/text.js'
import { loadWordList } from '../eval/words.js'
import { defaultBooksDir, defaultWordsFile } from '../eval/paths.js'
import { LAN, WAN, modelledSeconds, subCost, type Cost } from './cost.js'
import { privateDecodeStep, SharedCache, summarizeSharedCache, type PrivateAttention } from './private-decode.js'
import { ChaCha20Prg } from './prg.js'
import type { TruncMode } from './engine.js'
import { formatMB, operatorTable, textTable } from './report.js'
import { createWasmRing } from './ring.js'
import { createInProcessParties } from './session.js'

export interface PrivatePasskeyOptions {
  model: string
  /** prompt length in tokens (default 512) */
  length?: number
  method?: PrivateAttention
  /** truncation protocol (default 'one-round'; engine.ts lists the modes and their costs) */
  trunc?: TruncMode
  seed?: number
  log?: (line: string) => void
}

export interface PrivatePasskeyResult {
  answer: string
  continuation: string
  correct: boolean
  promptTokens: number
  /** per step: party 0's cost, and the offline bytes party 1 received */
  steps: { token: string; cost: Cost; offline1: number }[]
  prefill: Cost
}

export async function privatePasskey(opts: PrivatePasskeyOptions): Promise<PrivatePasskeyResult> {
  const log = opts.log ?? ((s: string) => console.log(s))
  const method = opts.method ?? 'mpcache'
  if (method !== 'full' && method !== 'mpcache') throw new RangeError(`kvkit mpc: method must be 'full' or 'mpcache', got ${JSON.stringify(method)}`)
  const length = opts.length ?? 512
  if (!Number.isInteger(length) || length < 64) throw new RangeError(`kvkit mpc: length must be an integer >= 64, got ${length}`)
  const model = await loadModel(opts.model, { backend: 'wasm' })
  try {
    const bosId = model.config.bosTokenId ?? model.config.eosTokenIds[0]
    const builder = new PromptBuilder({ tokenizer: model.tokenizer, bosId, books: loadBooks(defaultBooksDir()), words: loadWordList(defaultWordsFile()) })
    const sample = builder.build('passkey', length, opts.seed ?? 1, 0)
    const ids = sample.promptIds
    const { layers, kvHeads, headDim } = model.config
    // cleartext prefill of all prompt tokens but the last; the last goes through the first private step
    const cache = model.newCache()
    model.prefill(ids.slice(0, -1), cache)
    const ring = await createWasmRing()
    const client = new ChaCha20Prg(`kvkit-mpc-client-${opts.seed ?? 1}`)
    const shared = SharedCache.fromCache(cache, layers, kvHeads, ring, client)
    cache.dispose() // from here on the cache exists only as the two parties' shares
    const trunc = opts.trunc ?? 'one-round'
    const parties = createInProcessParties(ring, { trunc })
    if (method === 'mpcache') await summarizeSharedCache(parties, shared, layers, headDim)
    const prefill = parties[0].cost.snapshot()
    log(`private passkey query: ${ids.length} prompt tokens, ${method} attention over the secret-shared cache (2 parties in-process, fixed point 2^-18, ${trunc} truncation)`)
    const steps: PrivatePasskeyResult['steps'] = []
    const out: number[] = []
    let token = ids[ids.length - 1]
    for (let i = 0; i < sample.answerIds.length + 1; i++) {
      const before = parties[0].cost.snapshot()
      const offline1 = parties[1].cost.total.offlineBytes
      const logits = await privateDecodeStep({ model, parties, ring, prg: client, cache: shared, method }, token, ids.length - 1 + i)
      let best = 0
      for (let v = 1; v < logits.length; v++) if (logits[v] > logits[best]) best = v
      token = best
      if (model.config.eosTokenIds.includes(token)) break
      out.push(token)
      const text = model.tokenizer.decode([token])
      steps.push({ token: text, cost: subCost(parties[0].cost.snapshot(), before), offline1: parties[1].cost.total.offlineBytes - offline1 })
      log(`  step ${i + 1}: ${JSON.stringify(text)}`)
    }
    for (const p of parties) p.close()
    const continuation = model.tokenizer.decode(out)
    const correct = continuation.trim().startsWith(sample.answer.trim())
    log(`answer: ${JSON.stringify(continuation)} (expected ${JSON.stringify(sample.answer)}): ${correct ? 'correct' : 'wrong'}`)
    log('\nper decode step (party 0; both parties send the same online bytes):')
    log(textTable(['step', 'token', 'rounds', 'sent MiB', 'offline MiB (party 1)', 'LAN ms', 'WAN ms'], steps.map((s, i) => [String(i + 1), JSON.stringify(s.token), String(s.cost.rounds), formatMB(s.cost.bytesSent), formatMB(s.offline1), (modelledSeconds(s.cost, LAN) * 1e3).toFixed(1), (modelledSeconds(s.cost, WAN) * 1e3).toFixed(1)])))
    if (method === 'mpcache') log(`MPCache prefill summaries (one-off): ${prefill.rounds} rounds, ${formatMB(prefill.bytesSent)} MiB sent`)
    log('\nper operator, whole run (party 0, inclusive):')
    log(operatorTable(parties[0].cost))
    return { answer: sample.answer, continuation, correct, promptTokens: ids.length, steps, prefill }
  } finally {
    model.dispose()
  }
}

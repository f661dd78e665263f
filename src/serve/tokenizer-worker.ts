/**
 * The worker of TokenizerThread (tokenizer-thread.ts): builds the model's tokenizer from its
 * tokenizer.json and tokenizer_config.json and encodes the texts the server sends, one at a time, so a
 * long prompt is tokenized beside the event loop rather than on it.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { HfTokenizerAdapter } from '../model/tokenizer.js'
import type { TokenizerReply, TokenizerRequest, TokenizerSource } from './tokenizer-thread.js'

const port = parentPort!
const source = workerData as TokenizerSource
const tokenizer = new HfTokenizerAdapter(source.json, source.config)
port.on('message', ({ id, text }: TokenizerRequest) => {
  let reply: TokenizerReply
  try {
    const ids = Int32Array.from(tokenizer.encode(text))
    reply = { id, ids }
    port.postMessage(reply, [ids.buffer])
  } catch (e) {
    reply = { id, error: (e as Error).message }
    port.postMessage(reply)
  }
})

import { existsSync, readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'

const DATA = 'test/data/kvpress'

/** A capture of kvpress's decisions (test/data/kvpress): the large ones are stored gzipped (`NAME.json.gz`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readKvpress(file: string): any {
  const path = `${DATA}/${file}`
  const text = existsSync(`${path}.gz`) ? gunzipSync(readFileSync(`${path}.gz`)).toString('utf8') : readFileSync(path, 'utf8')
  return JSON.parse(text)
}

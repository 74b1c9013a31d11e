import { Buffer } from 'node:buffer'
import type { ServerResponse } from 'node:http'
import type { StoredResponse } from './idempotency.js'

/** Headers never kept for a replay: they describe one connection or one moment, not the response. */
const NOT_KEPT = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'upgrade', 'proxy-connection', 'trailer'])

/**
 * Keeps what `res` sends (status, headers, and the body up to `maxBytes`), for an idempotent
 * retry to get the same response again. Returns a function that gives the response once it has
 * been sent, or `undefined` when its body was larger than `maxBytes` or it was sent encoded
 * (`Content-Encoding`). Works for any framework on
 * node:http (Express, Koa).
 */
export function captureResponse(res: ServerResponse, maxBytes: number): () => StoredResponse | undefined {
  const chunks: Buffer[] = []
  let size = 0
  let overflow = false
  const keep = (chunk: unknown, encoding: unknown) => {
    if (overflow || chunk === undefined || chunk === null || typeof chunk === 'function') return
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
        : chunk instanceof Uint8Array
          ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
          : undefined
    if (!bytes) return
    size += bytes.length
    if (size > maxBytes) {
      overflow = true
      chunks.length = 0
      return
    }
    chunks.push(Buffer.from(bytes))
  }
  const write = res.write
  const end = res.end
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    keep(chunk, rest[0])
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
  } as ServerResponse['write']
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    keep(chunk, rest[0])
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest)
  } as ServerResponse['end']
  return () => {
    // A body encoded after it was written here (a compression middleware) cannot be sent again as
    // kept: the retry is served again as paid instead.
    if (overflow || res.hasHeader('content-encoding')) return undefined
    const headers: [string, string][] = []
    for (const [name, value] of Object.entries(res.getHeaders())) {
      if (value === undefined || NOT_KEPT.has(name)) continue
      for (const one of Array.isArray(value) ? value : [value]) headers.push([name, String(one)])
    }
    return { status: res.statusCode, headers, body: new Uint8Array(Buffer.concat(chunks)) }
  }
}

/**
 * Calls `finish` once `res` is done: whether it was served in full (sent to its end with a status
 * below 500; a handler that threw is a 500 here), the response as sent when `replayBytes` asks to
 * keep it (see {@link captureResponse}; only for a served one), and whether its headers went out.
 * What every paid and metered adapter on node:http does at the end of a response.
 */
export function whenResponseDone(
  res: ServerResponse,
  replayBytes: number | undefined,
  finish: (served: boolean, response: StoredResponse | undefined, headersSent: boolean) => void,
): void {
  const sent = replayBytes === undefined ? undefined : captureResponse(res, replayBytes)
  res.once('close', () => {
    const served = res.writableFinished && res.statusCode < 500
    finish(served, served ? sent?.() : undefined, res.headersSent)
  })
}

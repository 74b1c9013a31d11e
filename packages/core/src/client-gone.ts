import type { ServerResponse } from 'node:http'

/**
 * A signal that fires when the client goes away before `res` has finished (the connection closed
 * early). Adapters pass it to the paywall or meter, so an abandoned request stops paying and
 * stops its work. Works for any framework on node:http (Express, Koa).
 */
export function clientGone(res: ServerResponse): AbortSignal {
  const gone = new AbortController()
  res.once('close', () => {
    if (!res.writableFinished) gone.abort()
  })
  return gone.signal
}

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { request } from 'node:http'
import type { Request, Response } from 'express'
import { fail } from './http-error.js'
import type { Run } from './runs.js'

/** Hop-by-hop headers (RFC 9110 §7.6.1): they are for the next connection only, never forwarded. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/**
 * The headers to forward: without hop-by-hop headers (and those the Connection header names), and
 * without any `Cogpay-*` header. A visitor's payment headers are bearer credentials for this host:
 * a hosted script that saw them could open a lease with them and pull from the visitor. Nor may a
 * script's answer carry `Cogpay-*` headers, which would speak for the host to the visitor's payer.
 */
export function forwardable<T extends IncomingHttpHeaders | OutgoingHttpHeaders>(headers: T): T {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
  const kept: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    if (value === undefined || HOP_BY_HOP.has(lower) || named.includes(lower) || lower.startsWith('cogpay-')) continue
    kept[name] = value
  }
  return kept as T
}

/** Forwards a request under `/run/:id/app` to the run's script on its `PORT`. */
export function proxyToRun(run: Run, req: Request, res: Response): void {
  const path = req.originalUrl.slice(`/run/${run.id}/app`.length) || '/'
  const upstream = request(
    {
      host: '127.0.0.1',
      port: run.port,
      method: req.method,
      path,
      headers: { ...forwardable(req.headers), host: `127.0.0.1:${run.port}` },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardable(answer.headers))
      answer.pipe(res)
    },
  )
  upstream.once('error', () => fail(res, 502, 'HOSTING_APP_UNREACHABLE', `run ${run.id} is not listening on its PORT`))
  req.pipe(upstream)
}

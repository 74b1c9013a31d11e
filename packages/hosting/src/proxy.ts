import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { closeSync, constants, fstatSync, openSync } from 'node:fs'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
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

/** open(2)'s O_PATH on Linux: a descriptor that names an inode without opening it (sockets included). */
const O_PATH = 0o10000000

/**
 * Connects to a run's socket without trusting the path: the script owns its directory and could
 * put a symlink there (to a root-only socket of the host, say). The path is opened with O_PATH and
 * O_NOFOLLOW, checked to be a socket owned by the script's uid, and connected to through
 * `/proc/self/fd/N`, which names that very inode whatever the path says by then.
 */
function connectToRun(run: Run, uid: number): Socket | undefined {
  let fd: number
  try {
    fd = openSync(run.socket, O_PATH | constants.O_NOFOLLOW)
  } catch {
    return undefined
  }
  try {
    const stats = fstatSync(fd)
    if (!stats.isSocket() || stats.uid !== uid) {
      closeSync(fd)
      return undefined
    }
  } catch {
    closeSync(fd)
    return undefined
  }
  const socket = connect(`/proc/self/fd/${fd}`)
  let closed = false
  const close = () => {
    if (closed) return
    closed = true
    closeSync(fd)
  }
  socket.once('connect', close)
  socket.once('error', close)
  socket.once('close', close)
  return socket
}

/** Forwards a request under `/run/:id/app` to the run's script, on the Unix socket in its `PORT`. */
export function proxyToRun(run: Run, uid: number, req: Request, res: Response): void {
  const unreachable = () => fail(res, 502, 'HOSTING_APP_UNREACHABLE', `run ${run.id} is not listening on its socket (PORT)`)
  const socket = connectToRun(run, uid)
  if (!socket) return unreachable()
  const path = req.originalUrl.slice(`/run/${run.id}/app`.length) || '/'
  const upstream = request(
    {
      createConnection: () => socket,
      method: req.method,
      path,
      headers: { ...forwardable(req.headers), host: 'localhost' },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, forwardable(answer.headers))
      answer.pipe(res)
    },
  )
  upstream.once('error', unreachable)
  req.pipe(upstream)
}

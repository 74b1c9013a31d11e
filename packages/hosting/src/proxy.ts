import { request } from 'node:http'
import type { Request, Response } from 'express'
import { fail } from './http-error.js'
import type { Run } from './runs.js'

/** Forwards a request under `/run/:id/app` to the run's script on its `PORT`. */
export function proxyToRun(run: Run, req: Request, res: Response): void {
  const path = req.originalUrl.slice(`/run/${run.id}/app`.length) || '/'
  const upstream = request(
    { host: '127.0.0.1', port: run.port, method: req.method, path, headers: { ...req.headers, host: `127.0.0.1:${run.port}` } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    },
  )
  upstream.once('error', () => fail(res, 502, 'HOSTING_APP_UNREACHABLE', `run ${run.id} is not listening on its PORT`))
  req.pipe(upstream)
}

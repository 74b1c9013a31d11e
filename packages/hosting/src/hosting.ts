import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import { leaseRoute, type Lease, type LeaseHost } from '@cogpay/express'
import { fail, httpError } from './http-error.js'
import { proxyToRun } from './proxy.js'
import { RunRegistry, viewRun, type Run, type RunView } from './runs.js'
import { freePort, killLeftover, startScript } from './sandbox.js'
import { readScript } from './script.js'

/** Options of {@link createHosting}. */
export interface HostingOptions {
  /** Keeps the leases; give it a `FileLeaseStore` so runs survive a restart of the host. */
  host: LeaseHost
  /** Billed per second while a script runs, in the host's units. Default `10n`. */
  ratePerSecond?: bigint
  /** Or: billed this much per interval (instead of `ratePerSecond`). */
  amount?: bigint
  /** Billing interval: each is paid at its start. Default `1000` ms. */
  intervalMs?: number
  /** Where each run gets its own directory. Default `<tmpdir>/cogpay-runs`. */
  runsDir?: string
  /** Largest script accepted, in bytes. Default 64 KiB. */
  maxScriptBytes?: number
  /** Scripts running at once; past this, `POST /run` answers 503 before any payment. Default `50`. */
  maxRunning?: number
  /** Finished runs remembered (status, logs); past this the oldest is forgotten and its directory removed. Default `1000`. */
  maxFinished?: number
  /** V8 heap limit of each script, in MiB. Default `64`. */
  memoryMb?: number
  /** Told when scripts start and exit. */
  observer?: HostingObserver
}

/** What the host reports, for logs and tests. */
export interface HostingObserver {
  onSpawn?(run: RunView): void
  /** The script's process exited; `at` is `Date.now()`. */
  onExit?(run: RunView, at: number): void
}

/** The hosting API and what it runs. */
export interface Hosting {
  /** The Express app of the API; serve it with `http.createServer(hosting.app)` or mount it. */
  readonly app: Express
  /** Runs in this process, by id (the lease's id). */
  readonly runs: ReadonlyMap<string, Run>
  /**
   * After a restart: resumes every lease the store has as active and starts its script again
   * (a process the previous host left behind is killed first). Resolves with the runs restarted.
   */
  resume(): Promise<RunView[]>
  /** Kills every script and lets go of the leases without ending them (they resume on restart). */
  close(): Promise<void>
}

/**
 * A Codius-style hosting API: `POST /run` with a Node script as the body runs it as a child
 * process, billed over a lease for as long as it runs. The script gets its own directory (the
 * only files it may read or write, by Node's permission model), a heap limit, a file-size and
 * open-files limit, no child processes, and an environment with nothing but `PATH`, `HOME` and
 * `PORT`: no secret of the host. If it listens on `PORT`, `/run/:id/app/...` is proxied to it.
 * It is killed as soon as payment stops (the lease's signal: cap reached, revoked, payer gone or
 * stalled, at most one interval plus the lease host's grace after the last payment).
 *
 * - `GET /run/:id`: status and what was paid so far.
 * - `GET /run/:id/logs`: the script's output (its last 64 KiB).
 * - `DELETE /run/:id`: stops the script; billing stops.
 *
 * A run's id is a 128-bit random lease id: whoever has it can see, use and stop the run.
 */
export function createHosting(options: HostingOptions): Hosting {
  const maxScriptBytes = options.maxScriptBytes ?? 64 * 1024
  const maxRunning = options.maxRunning ?? 50
  const memoryMb = options.memoryMb ?? 64
  const observer = options.observer ?? {}
  const registry = new RunRegistry(options.runsDir ?? join(tmpdir(), 'cogpay-runs'), options.maxFinished ?? 1000)
  const app = express()

  /** Starts (or restarts) a run's script, and ties it to its lease both ways. */
  const start = (run: Run): void => {
    const child = startScript(run.dir, run.port, { memoryMb })
    run.child = child
    run.status = 'running'
    observer.onSpawn?.(viewRun(run))
    child.once('exit', (code) => {
      if (run.status === 'running') {
        run.status = 'exited'
        // It ended by itself: billing ends with it.
        void run.lease.end()
      }
      run.exitCode = code
      observer.onExit?.(viewRun(run), Date.now())
      registry.forgetOld()
    })
    // It could not start at all (no exit event follows): nothing runs, so nothing is billed.
    child.once('error', () => {
      if (run.status !== 'running') return
      run.status = 'exited'
      run.exitCode = null
      void run.lease.end()
    })
    const stop = () => {
      if (run.status === 'running') run.status = 'stopped'
      child.kill('SIGKILL')
    }
    if (run.lease.signal.aborted) stop()
    else run.lease.signal.addEventListener('abort', stop, { once: true })
  }

  /** Registers a run for a lease and starts its script. */
  const launch = (lease: Lease, dir: string, port: number): Run => {
    const run = registry.add(lease, dir, port)
    start(run)
    return run
  }

  app.post(
    '/run',
    (_req, _res, next) =>
      next(
        registry.running() >= maxRunning
          ? httpError(503, 'HOSTING_FULL', `this host runs at most ${maxRunning} scripts at once; try again later`)
          : undefined,
      ),
    (req, res, next) => readScript(req, maxScriptBytes).then((script) => ((res.locals.script = script), next()), next),
    leaseRoute({
      host: options.host,
      ...(options.amount === undefined ? { ratePerSecond: options.ratePerSecond ?? 10n } : { amount: options.amount }),
      intervalMs: options.intervalMs ?? 1000,
    }),
    async (_req: Request, res: Response) => {
      const lease: Lease = res.locals.lease
      try {
        const port = await freePort()
        const dir = await registry.create(lease, res.locals.script as string, port)
        const run = launch(lease, dir, port)
        res.status(201).location(`/run/${run.id}`).json(viewRun(run))
      } catch (err) {
        await lease.end()
        throw err
      }
    },
  )

  const find = (req: Request, res: Response): Run | undefined => {
    const run = registry.get(String(req.params.id))
    if (!run) fail(res, 404, 'HOSTING_RUN_NOT_FOUND', `no run ${String(req.params.id).slice(0, 64)}`)
    return run
  }

  app.get('/run/:id', (req, res) => {
    const run = find(req, res)
    if (run) res.json(viewRun(run))
  })

  app.get('/run/:id/logs', async (req, res) => {
    const run = find(req, res)
    if (run) res.type('text/plain').send(await tail(join(run.dir, 'output.log'), 64 * 1024))
  })

  app.delete('/run/:id', async (req, res) => {
    const run = find(req, res)
    if (!run) return
    if (run.status === 'running') run.status = 'stopped'
    run.child?.kill('SIGKILL')
    await run.lease.end()
    res.json(viewRun(run))
  })

  app.all('/run/:id/app{/*path}', (req, res) => {
    const run = find(req, res)
    if (!run) return
    if (run.status !== 'running') return fail(res, 409, 'HOSTING_RUN_STOPPED', `run ${run.id} is ${run.status}`)
    proxyToRun(run, req, res)
  })

  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err)
    const e = err as { status?: number; code?: string; message?: string; expose?: boolean }
    const status = typeof e.status === 'number' && e.status >= 400 && e.status < 600 ? e.status : 500
    const exposed = status < 500 || e.expose === true
    fail(res, status, exposed && e.code ? e.code : 'HOSTING_ERROR', exposed ? String(e.message) : 'internal error')
  })

  return {
    app,
    runs: registry.runs,
    async resume() {
      const leases = await options.host.resume()
      const restarted: RunView[] = []
      for (const lease of leases) {
        const found = await registry.find(lease.id)
        if (!found) {
          await lease.end()
          continue
        }
        killLeftover(found.dir)
        restarted.push(viewRun(launch(lease, found.dir, found.port)))
      }
      return restarted
    },
    async close() {
      for (const run of registry.runs.values()) {
        run.status = 'stopped'
        run.child?.kill('SIGKILL')
      }
      await options.host.close()
    },
  }
}

/** The last `bytes` of a file, as text; empty when there is no file. */
async function tail(path: string, bytes: number): Promise<string> {
  const file = await open(path, 'r').catch(() => undefined)
  if (!file) return ''
  try {
    const { size } = await file.stat()
    const start = Math.max(0, size - bytes)
    const buffer = Buffer.alloc(size - start)
    await file.read(buffer, 0, buffer.length, start)
    return buffer.toString('utf8')
  } finally {
    await file.close()
  }
}

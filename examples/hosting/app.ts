import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, readlinkSync } from 'node:fs'
import { mkdir, mkdtemp, open, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import { leaseRoute, type Lease, type LeaseHost } from '@cogpay/express'

/** Options of the hosting API. */
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
  observer?: HostingObserver
}

/** What the host reports, for logs and tests. */
export interface HostingObserver {
  onSpawn?(run: RunView): void
  /** The script's process exited; `at` is `Date.now()`. */
  onExit?(run: RunView, at: number): void
}

/** A run as the API shows it. */
export interface RunView {
  readonly id: string
  /** `running`, `stopped` (payment stopped or DELETE), or `exited` (the script ended by itself). */
  readonly status: 'running' | 'stopped' | 'exited'
  readonly pid: number | undefined
  readonly exitCode: number | null | undefined
  readonly lease: Record<string, unknown>
}

interface Run {
  readonly id: string
  readonly dir: string
  readonly port: number
  readonly lease: Lease
  child: ChildProcess | undefined
  status: RunView['status']
  exitCode: number | null | undefined
}

/** The hosting API and what it runs. */
export interface Hosting {
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
 * process, billed per second over a lease for as long as it runs. The script gets its own
 * directory (the only files it may read or write, by Node's permission model), a heap limit, a
 * file-size and open-files limit, no child processes, and an environment with nothing but `PATH`,
 * `HOME` and `PORT`: no secret of the host. If it listens on `PORT`, `/run/:id/app/...` is proxied
 * to it. It is killed as soon as payment stops (the lease's signal: cap reached, revoked, payer
 * gone or stalled, at most one interval plus the lease host's grace after the last payment).
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
  const maxFinished = options.maxFinished ?? 1000
  const memoryMb = options.memoryMb ?? 64
  const runsDir = options.runsDir ?? join(tmpdir(), 'cogpay-runs')
  const observer = options.observer ?? {}
  const runs = new Map<string, Run>()
  const app = express()

  const view = (run: Run): RunView => ({
    id: run.id,
    status: run.status,
    pid: run.child?.pid,
    exitCode: run.exitCode,
    lease: run.lease.toJSON(),
  })

  /** Starts (or restarts) a run's script, and ties it to its lease both ways. */
  const start = (run: Run): void => {
    const argv = command([
      process.execPath,
      '--experimental-permission',
      '--disable-warning=ExperimentalWarning',
      `--allow-fs-read=${run.dir}`,
      `--allow-fs-write=${run.dir}`,
      `--max-old-space-size=${memoryMb}`,
      'script.js',
    ])
    const log = openSync(join(run.dir, 'output.log'), 'a')
    let child: ChildProcess
    try {
      child = spawn(argv[0], argv[1], {
        cwd: run.dir,
        env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: run.dir, PORT: String(run.port) },
        stdio: ['ignore', log, log],
      })
    } finally {
      // The child has its own copy of the log's descriptor.
      closeSync(log)
    }
    run.child = child
    run.status = 'running'
    if (child.pid) void writeFile(join(run.dir, 'pid'), String(child.pid)).catch(() => {})
    observer.onSpawn?.(view(run))
    child.once('exit', (code) => {
      if (run.status === 'running') {
        run.status = 'exited'
        // It ended by itself: billing ends with it.
        void run.lease.end()
      }
      run.exitCode = code
      observer.onExit?.(view(run), Date.now())
      forgetOldRuns()
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
    const run: Run = { id: lease.id, dir, port, lease, child: undefined, status: 'running', exitCode: undefined }
    runs.set(run.id, run)
    start(run)
    return run
  }

  /** Keeps at most `maxFinished` finished runs; the oldest go, with their directories. */
  const forgetOldRuns = () => {
    const finished = [...runs.values()].filter((run) => run.status !== 'running')
    for (const run of finished.slice(0, Math.max(0, finished.length - maxFinished))) {
      runs.delete(run.id)
      void rm(run.dir, { recursive: true, force: true }).catch(() => {})
    }
  }
  const running = () => [...runs.values()].filter((run) => run.status === 'running').length

  app.post(
    '/run',
    (_req, _res, next) =>
      next(
        running() >= maxRunning
          ? httpError(503, 'HOSTING_FULL', `this host runs at most ${maxRunning} scripts at once; try again later`)
          : undefined,
      ),
    (req, res, next) => readScript(req, maxScriptBytes).then((script) => ((res.locals.script = script), next()), next),
    leaseRoute({
      host: options.host,
      ...(options.amount === undefined ? { ratePerSecond: options.ratePerSecond ?? 10n } : { amount: options.amount }),
      intervalMs: options.intervalMs ?? 1000,
    }),
    async (req: Request, res: Response) => {
      const lease: Lease = res.locals.lease
      try {
        await mkdir(runsDir, { recursive: true })
        const dir = await realpath(await mkdtemp(join(runsDir, 'run-')))
        await writeFile(join(dir, 'script.js'), res.locals.script as string)
        const port = await freePort()
        await writeFile(join(dir, 'run.json'), JSON.stringify({ lease: lease.id, port }))
        const run = launch(lease, dir, port)
        res.status(201).location(`/run/${run.id}`).json(view(run))
      } catch (err) {
        await lease.end()
        throw err
      }
    },
  )

  const find = (req: Request, res: Response): Run | undefined => {
    const run = runs.get(String(req.params.id))
    if (!run) fail(res, 404, 'HOSTING_RUN_NOT_FOUND', `no run ${String(req.params.id).slice(0, 64)}`)
    return run
  }

  app.get('/run/:id', (req, res) => {
    const run = find(req, res)
    if (run) res.json(view(run))
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
    res.json(view(run))
  })

  app.all('/run/:id/app{/*path}', (req, res) => {
    const run = find(req, res)
    if (!run) return
    if (run.status !== 'running') return fail(res, 409, 'HOSTING_RUN_STOPPED', `run ${run.id} is ${run.status}`)
    const path = req.originalUrl.slice(`/run/${run.id}/app`.length) || '/'
    const upstream = httpRequest(
      { host: '127.0.0.1', port: run.port, method: req.method, path, headers: { ...req.headers, host: `127.0.0.1:${run.port}` } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      },
    )
    upstream.once('error', () => fail(res, 502, 'HOSTING_APP_UNREACHABLE', `run ${run.id} is not listening on its PORT`))
    req.pipe(upstream)
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
    runs,
    async resume() {
      const leases = await options.host.resume()
      const restarted: RunView[] = []
      for (const lease of leases) {
        const dir = await runDir(runsDir, lease.id)
        if (!dir) {
          await lease.end()
          continue
        }
        const { port } = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8')) as { port: number }
        killLeftover(dir)
        restarted.push(view(launch(lease, dir, port)))
      }
      return restarted
    },
    async close() {
      for (const run of runs.values()) {
        run.status = 'stopped'
        run.child?.kill('SIGKILL')
      }
      await options.host.close()
    },
  }
}

/** The command to run: under `prlimit` (open files, file size) where it exists. */
function command(argv: string[]): [string, string[]] {
  if (hasPrlimit()) return ['prlimit', ['--nofile=256', `--fsize=${16 * 1024 * 1024}`, '--', ...argv]]
  return [argv[0]!, argv.slice(1)]
}

let prlimit: boolean | undefined
function hasPrlimit(): boolean {
  prlimit ??= spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0
  return prlimit
}

/** Reads the request body as the script: UTF-8 text, not empty, at most `limit` bytes. */
async function readScript(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > limit) throw httpError(413, 'HOSTING_SCRIPT_TOO_LARGE', `the script is larger than ${limit} bytes`)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) throw httpError(413, 'HOSTING_SCRIPT_TOO_LARGE', `the script is larger than ${limit} bytes`)
    chunks.push(chunk)
  }
  const script = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })
  let text: string
  try {
    text = script.decode(Buffer.concat(chunks))
  } catch {
    throw httpError(400, 'HOSTING_SCRIPT_INVALID', 'the script is not UTF-8 text')
  }
  if (text.trim() === '') throw httpError(400, 'HOSTING_SCRIPT_EMPTY', 'send the script to run as the request body')
  return text
}

function httpError(status: number, code: string, message: string): Error {
  return Object.assign(new Error(message), { status, code, expose: true })
}

function fail(res: Response, status: number, code: string, message: string): void {
  if (!res.headersSent) res.status(status).json({ error: { code, message } })
}

/** A port for the script to listen on (free now; a race with another process is possible). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** The run directory of a lease, found by its run.json. */
async function runDir(runsDir: string, id: string): Promise<string | undefined> {
  for (const name of await readdir(runsDir).catch(() => [])) {
    const dir = join(runsDir, name)
    try {
      const meta = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8')) as { lease?: string }
      if (meta.lease === id) return await realpath(dir)
    } catch {
      // not a run
    }
  }
  return undefined
}

/** Kills a script the previous host process left running in `dir` (checked by its working directory). */
function killLeftover(dir: string): void {
  let pid: number
  try {
    pid = Number(readFileSync(join(dir, 'pid'), 'utf8'))
    if (!Number.isSafeInteger(pid) || pid <= 1) return
    if (readlinkSync(`/proc/${pid}/cwd`) !== dir) return
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

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

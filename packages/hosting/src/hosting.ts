import { open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import { CogpayError, ErrorCodes } from '@cogpay/core'
import { leaseRoute, type Lease, type LeaseHost } from '@cogpay/express'
import { fail, httpError } from './http-error.js'
import { HostingIsolationError } from './isolation-error.js'
import { planIsolation, type IsolationMode, type IsolationReport } from './isolation.js'
import { proxyToRun } from './proxy.js'
import { RunSandbox } from './run-sandbox.js'
import { RunRegistry, viewRun, type Run, type RunView } from './runs.js'
import { readScript } from './script.js'
import { DEFAULT_UID_RANGE, type UidRange } from './uid-pool.js'

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
  /** Where the host keeps its record of each run (mode 0700, the scripts cannot reach it). Default `<tmpdir>/cogpay-runs`. */
  runsDir?: string
  /** Largest script accepted, in bytes. Default 64 KiB. */
  maxScriptBytes?: number
  /** Scripts running at once; past this, `POST /run` answers 503 before any payment. Default `50`. */
  maxRunning?: number
  /** Finished runs remembered (status, logs); past this the oldest is forgotten and its record removed. Default `1000`. */
  maxFinished?: number
  /**
   * `'strict'`: refuse to start (throw `HostingIsolationError`, code `HOSTING_ISOLATION_UNAVAILABLE`)
   * unless every mechanism of {@link IsolationReport} is in force. `'best-effort'`: use what this
   * machine has, fall back where it can, and say at start what is weaker. Default `'best-effort'`.
   */
  isolation?: IsolationMode
  /**
   * Memory of each script, in MiB, all of it (V8 heap, buffers, native memory, the files in its
   * directory): its cgroup's limit, past which the kernel kills it. The V8 heap gets half. Without a
   * memory cgroup: `prlimit --as` on address space (Node's own reservation plus this). Default `128`.
   */
  memoryMb?: number
  /** CPU of each script, in percent of one core (cgroup CFS quota: it is throttled, not killed). Default `50`. */
  cpuPercent?: number
  /** Without a cpu cgroup only: CPU seconds a script may use per start (`prlimit --cpu`), then it is killed. Default `3600`. */
  cpuSeconds?: number
  /** Disk of each script's directory, in MiB: a tmpfs of this size, or (without one) its usage polled and the script killed past it. Default `16`. */
  diskMb?: number
  /** The uids scripts run as, one per run, when the host runs as root. Default `1_900_000_000`, 100,000,000 of them. */
  uids?: UidRange
  /** Root-only state: uid locks and the scripts' directories (mount points). Default `/run/cogpay`. */
  stateDir?: string
  /** Where to log (pino, or anything with `info` and `warn`): the isolation report at start, runs killed at a bound. Default: nothing, but a weaker isolation than asked is still a process warning. */
  logger?: HostingLogger
  /** Told when scripts start and exit. */
  observer?: HostingObserver
}

/** A structured logger: pino's, or anything with these two methods. */
export interface HostingLogger {
  info(fields: Record<string, unknown>, message: string): void
  warn(fields: Record<string, unknown>, message: string): void
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
  /** What isolates the scripts on this machine, as found at start. */
  readonly isolation: IsolationReport
  /**
   * After a restart: lets go of what runs of a crashed host still held (kills what is left in their
   * cgroups, unmounts their directories), resumes every lease the store has as active and starts
   * its script again, afresh. Resolves with the runs restarted.
   */
  resume(): Promise<RunView[]>
  /** Kills every script, gives back what they held, and lets go of the leases without ending them (they resume on restart). */
  close(): Promise<void>
}

/** A run with what the host alone needs to know about it. */
interface HostedRun extends Run {
  readonly name: string
  readonly recordDir: string
  /** The sandbox of the current start. */
  sandbox: RunSandbox
  /** Settles once the current start's process has exited and its sandbox is given back. */
  ended: Promise<void>
  /** Writes of its record, in order. */
  writes: Promise<void>
}

const warned = new Set<string>()

/**
 * A Codius-style hosting API: `POST /run` with a Node script as the body runs it as a child
 * process, billed over a lease for as long as it runs. Each script runs in a sandbox of its own
 * (see {@link IsolationReport}, `hosting.isolation`): as root, a uid of its own, cgroups bounding
 * its memory, CPU and tasks, a tmpfs of bounded size as its only directory, an empty network
 * namespace, and death with the host; always, Node's permission model (it reads and writes its
 * directory only and starts no processes) and an environment of `PATH`, `HOME` and `PORT` only.
 * `PORT` is the path of a Unix socket: if the script listens on it (`server.listen(process.env.PORT)`),
 * `/run/:id/app/...` is proxied to it. It is killed as soon as payment stops (the lease's signal: cap
 * reached, revoked, payer gone or stalled, at most one interval plus the lease host's grace after
 * the last payment).
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
  const memoryMb = positive('memoryMb', options.memoryMb ?? 128, 16)
  const runsDir = options.runsDir ?? join(tmpdir(), 'cogpay-runs')
  if (runsDir.includes(',')) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `runsDir must not contain a comma (Node's --allow-fs-* lists are comma-separated): ${runsDir}`)
  const mode = options.isolation ?? 'best-effort'
  if (mode !== 'strict' && mode !== 'best-effort') throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `isolation must be 'strict' or 'best-effort', got ${String(mode)}`)
  const uids = options.uids ?? DEFAULT_UID_RANGE
  if (!Number.isSafeInteger(uids.first) || !Number.isSafeInteger(uids.count) || uids.first < 1000 || uids.count < 1 || uids.first + uids.count > 4_294_967_294) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `uids must be a range of uids from 1000 up to 4294967294, got first=${uids.first} count=${uids.count}`)
  }
  const { plan, report } = planIsolation({
    mode,
    runsDir,
    stateDir: options.stateDir ?? '/run/cogpay',
    uidRange: uids,
    limits: {
      memoryMb,
      heapMb: Math.floor(memoryMb / 2),
      cpuPercent: positive('cpuPercent', options.cpuPercent ?? 50, 1),
      cpuSeconds: positive('cpuSeconds', options.cpuSeconds ?? 3600, 1),
      diskMb: positive('diskMb', options.diskMb ?? 16, 1),
      maxTasks: 64,
      maxOpenFiles: 256,
    },
  })
  if (mode === 'strict' && report.weak.length > 0) throw new HostingIsolationError(report)
  // A Unix socket path has at most 107 bytes.
  if (!plan.homesDir && join(runsDir, 'run-0123456789abcdef', 'home', 'app.sock').length > 107) {
    throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `runsDir is too long for the scripts' Unix sockets (at most ${107 - 35} bytes): ${runsDir}`)
  }
  announce(report, options.logger)

  const observer = options.observer ?? {}
  const registry = new RunRegistry<HostedRun>(runsDir, options.maxFinished ?? 1000)
  const app = express()
  let closing = false

  /** Writes a run's record after the writes before it. */
  const persist = (run: HostedRun, held: ReturnType<RunSandbox['held']> | null): Promise<void> => {
    run.writes = run.writes
      .then(() => registry.write(run.recordDir, { v: 1, lease: run.id, name: run.name, held }))
      .catch(() => {})
    return run.writes
  }

  /** Starts (or restarts) a run's script in a fresh sandbox, and ties it to its lease both ways. */
  const start = async (run: HostedRun): Promise<void> => {
    const sandbox = new RunSandbox(plan, run.name, run.recordDir)
    run.sandbox = sandbox
    let release!: () => void
    run.ended = new Promise((resolve) => (release = resolve))
    const giveBack = () => {
      void sandbox
        .release()
        .then(() => persist(run, null))
        .finally(release)
    }
    try {
      await persist(run, await sandbox.prepare(await registry.script(run.recordDir)))
      if (closing) throw httpError(503, 'HOSTING_CLOSING', 'this host is shutting down')
    } catch (err) {
      run.status = 'exited'
      run.exitCode = null
      giveBack()
      throw err
    }
    const child = sandbox.start(join(run.recordDir, 'output.log'))
    run.child = child
    run.status = 'running'
    void persist(run, sandbox.held())
    observer.onSpawn?.(viewRun(run))
    child.once('exit', (code, signal) => {
      run.exceeded = sandbox.exceeded(signal)
      if (run.status === 'running') {
        run.status = 'exited'
        // It ended by itself (or at a bound): billing ends with it.
        void run.lease.end()
      }
      run.exitCode = code
      run.signal = signal
      observer.onExit?.(viewRun(run), Date.now())
      if (run.exceeded) options.logger?.warn({ run: run.id, exceeded: run.exceeded, signal }, `run ${run.id} was killed at its ${run.exceeded} bound`)
      giveBack()
      registry.forgetOld((old) => old.ended)
    })
    // It could not start at all (no exit event follows): nothing runs, so nothing is billed.
    child.once('error', () => {
      if (run.status === 'running') {
        run.status = 'exited'
        run.exitCode = null
        void run.lease.end()
      }
      giveBack()
    })
    const stop = () => {
      if (run.status === 'running') run.status = 'stopped'
      child.kill('SIGKILL')
    }
    if (run.lease.signal.aborted) stop()
    else run.lease.signal.addEventListener('abort', stop, { once: true })
  }

  /** Registers a run for a lease and starts its script. */
  const launch = async (lease: Lease, name: string, recordDir: string): Promise<HostedRun> => {
    const sandbox = new RunSandbox(plan, name, recordDir)
    const run = registry.add(
      {
        id: lease.id,
        name,
        recordDir,
        dir: sandbox.home,
        socket: sandbox.socket,
        lease,
        sandbox,
        child: undefined,
        status: 'running',
        exitCode: undefined,
        signal: undefined,
        exceeded: undefined,
        ended: Promise.resolve(),
        writes: Promise.resolve(),
      },
      recordDir,
    )
    await start(run)
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
        const { name, dir } = await registry.create(lease, res.locals.script as string)
        const run = await launch(lease, name, dir)
        res.status(201).location(`/run/${run.id}`).json(viewRun(run))
      } catch (err) {
        await lease.end()
        throw err
      }
    },
  )

  const find = (req: Request, res: Response): HostedRun | undefined => {
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
    if (run) res.type('text/plain').send(await tail(join(run.recordDir, 'output.log'), 64 * 1024))
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
    proxyToRun(run, run.sandbox.uid, req, res)
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
    isolation: report,
    async resume() {
      const leases = await options.host.resume()
      const records = await registry.records()
      for (const found of records.values()) {
        if (!found.record.held || registry.get(found.record.lease)) continue
        await RunSandbox.releaseLeftover(plan, found.name, found.dir, found.record.held)
        await registry.write(found.dir, { ...found.record, held: null })
      }
      const restarted: RunView[] = []
      for (const lease of leases) {
        if (registry.get(lease.id)) continue
        const found = records.get(lease.id)
        if (!found) {
          await lease.end()
          continue
        }
        try {
          restarted.push(viewRun(await launch(lease, found.name, found.dir)))
        } catch (err) {
          await lease.end()
          options.logger?.warn({ run: lease.id, err: String(err) }, `run ${lease.id} could not be restarted`)
        }
      }
      return restarted
    },
    async close() {
      closing = true
      const runs = [...registry.runs.values()]
      for (const run of runs) {
        if (run.status === 'running') run.status = 'stopped'
        run.child?.kill('SIGKILL')
      }
      // Let go of the leases at once (no interval is paid past this), then wait for the sandboxes.
      await options.host.close()
      await Promise.all(runs.map((run) => run.ended))
    },
  }
}

/** Logs the isolation report at start; a weaker isolation than full is at least a process warning. */
function announce(report: IsolationReport, logger: HostingLogger | undefined): void {
  if (logger) {
    if (report.weak.length === 0) logger.info({ isolation: report.mechanisms }, report.summary)
    else logger.warn({ isolation: report.mechanisms, weak: report.weak }, report.summary)
    return
  }
  if (report.weak.length === 0 || warned.has(report.summary)) return
  warned.add(report.summary)
  process.emitWarning(report.summary, { code: 'HOSTING_ISOLATION_WEAK' })
}

function positive(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new CogpayError(ErrorCodes.INVALID_OPTIONS, `${name} must be an integer >= ${min}, got ${value}`)
  return value
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

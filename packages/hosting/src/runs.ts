import type { ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Lease } from '@cogpay/core'

/** A run as the API shows it. */
export interface RunView {
  readonly id: string
  /** `running`, `stopped` (payment stopped or DELETE), or `exited` (the script ended by itself). */
  readonly status: 'running' | 'stopped' | 'exited'
  readonly pid: number | undefined
  readonly exitCode: number | null | undefined
  readonly lease: Record<string, unknown>
}

/** One script, its directory and its lease. */
export interface Run {
  /** The lease's id: whoever has it can see, use and stop the run. */
  readonly id: string
  readonly dir: string
  /** The port the script may listen on; `/run/:id/app/…` is proxied to it. */
  readonly port: number
  readonly lease: Lease
  child: ChildProcess | undefined
  status: RunView['status']
  exitCode: number | null | undefined
}

/** What a run directory remembers about its run, so that a restarted host finds it. */
interface RunFile {
  readonly lease: string
  readonly port: number
}

/**
 * The runs of one host, in memory and on disk: each run has a directory `run-*` under `dir` with
 * its script and a `run.json` naming its lease. Finished runs are remembered up to `maxFinished`;
 * past that the oldest is forgotten and its directory removed.
 */
export class RunRegistry {
  readonly #runs = new Map<string, Run>()
  readonly #dir: string
  readonly #maxFinished: number

  constructor(dir: string, maxFinished: number) {
    this.#dir = dir
    this.#maxFinished = maxFinished
  }

  /** Every run this process knows, by id. */
  get runs(): ReadonlyMap<string, Run> {
    return this.#runs
  }

  get(id: string): Run | undefined {
    return this.#runs.get(id)
  }

  /** How many runs are running now. */
  running(): number {
    let count = 0
    for (const run of this.#runs.values()) if (run.status === 'running') count++
    return count
  }

  /** Makes a new run directory with the script and its `run.json`; returns the directory. */
  async create(lease: Lease, script: string, port: number): Promise<string> {
    await mkdir(this.#dir, { recursive: true })
    const dir = await realpath(await mkdtemp(join(this.#dir, 'run-')))
    await writeFile(join(dir, 'script.js'), script)
    const file: RunFile = { lease: lease.id, port }
    await writeFile(join(dir, 'run.json'), JSON.stringify(file))
    return dir
  }

  /** Registers a run (new, or found again after a restart). */
  add(lease: Lease, dir: string, port: number): Run {
    const run: Run = { id: lease.id, dir, port, lease, child: undefined, status: 'running', exitCode: undefined }
    this.#runs.set(run.id, run)
    return run
  }

  /** The directory and port of a lease's run, found by its `run.json`; `undefined` when there is none. */
  async find(leaseId: string): Promise<{ dir: string; port: number } | undefined> {
    for (const name of await readdir(this.#dir).catch(() => [])) {
      const dir = join(this.#dir, name)
      try {
        const file = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8')) as Partial<RunFile>
        if (file.lease === leaseId && typeof file.port === 'number') return { dir: await realpath(dir), port: file.port }
      } catch {
        // not a run
      }
    }
    return undefined
  }

  /** Keeps at most `maxFinished` finished runs; the oldest go, with their directories. */
  forgetOld(): void {
    const finished = [...this.#runs.values()].filter((run) => run.status !== 'running')
    for (const run of finished.slice(0, Math.max(0, finished.length - this.#maxFinished))) {
      this.#runs.delete(run.id)
      void rm(run.dir, { recursive: true, force: true }).catch(() => {})
    }
  }
}

/** A run as the API shows it. */
export function viewRun(run: Run): RunView {
  return { id: run.id, status: run.status, pid: run.child?.pid, exitCode: run.exitCode, lease: run.lease.toJSON() }
}

import { randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Lease } from '@cogpay/core'
import { makeDirs } from './dirs.js'
import type { Exceeded, Held } from './run-sandbox.js'

/** A run as the API shows it. */
export interface RunView {
  readonly id: string
  /** `running`, `stopped` (payment stopped or DELETE), or `exited` (the script ended by itself, or at a bound). */
  readonly status: 'running' | 'stopped' | 'exited'
  readonly pid: number | undefined
  readonly exitCode: number | null | undefined
  /** The signal that ended the script, if one did. */
  readonly signal: string | null | undefined
  /** The bound that ended it, if one did: `memory`, `cpu` or `disk`. */
  readonly exceeded: Exceeded | undefined
  readonly lease: Record<string, unknown>
}

/** One script, its directory and its lease. */
export interface Run {
  /** The lease's id: whoever has it can see, use and stop the run. */
  readonly id: string
  /** The script's own directory (its cwd and HOME), made afresh at each start. */
  readonly dir: string
  /** The Unix socket the script listens on: its `PORT`. `/run/:id/app/…` is proxied to it. */
  readonly socket: string
  readonly lease: Lease
  child: ChildProcess | undefined
  status: RunView['status']
  exitCode: number | null | undefined
  signal: NodeJS.Signals | null | undefined
  exceeded: Exceeded | undefined
}

/**
 * What the host keeps about a run, in `<runsDir>/<name>/record.json`: a directory of the host's
 * own (mode 0700) that the script's directory is not in, so the script can neither read nor forge
 * it. `held` is what the run holds while it runs (`null` once given back).
 */
export interface RunRecord {
  readonly v: 1
  readonly lease: string
  readonly name: string
  readonly held: Held | null
}

/** A run's record, found on disk. */
export interface FoundRecord {
  readonly name: string
  /** The record's directory: `record.json`, `script.js` (the host's copy), `output.log`. */
  readonly dir: string
  readonly record: RunRecord
}

/**
 * The runs of one host, in memory and on disk. Each run has a record directory `run-*` under
 * `dir`, the host's only. Finished runs are remembered up to `maxFinished`; past that the oldest
 * is forgotten and its record removed.
 */
export class RunRegistry<R extends Run = Run> {
  readonly #runs = new Map<string, R>()
  readonly #dir: string
  readonly #maxFinished: number
  readonly #recordDirs = new Map<string, string>()

  constructor(dir: string, maxFinished: number) {
    this.#dir = dir
    this.#maxFinished = maxFinished
  }

  /** Every run this process knows, by id. */
  get runs(): ReadonlyMap<string, R> {
    return this.#runs
  }

  get(id: string): R | undefined {
    return this.#runs.get(id)
  }

  /** How many runs are running now. */
  running(): number {
    let count = 0
    for (const run of this.#runs.values()) if (run.status === 'running') count++
    return count
  }

  /** Makes a run's record directory with the host's copy of the script; returns its name and directory. */
  async create(lease: Lease, script: string): Promise<{ name: string; dir: string }> {
    makeDirs(this.#dir, 0o700)
    for (;;) {
      const name = `run-${randomBytes(8).toString('hex')}`
      const dir = join(this.#dir, name)
      try {
        await mkdir(dir, { mode: 0o700 })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue
        throw err
      }
      await writeFile(join(dir, 'script.js'), script, { mode: 0o600 })
      await this.write(dir, { v: 1, lease: lease.id, name, held: null })
      return { name, dir }
    }
  }

  /** Writes a run's record (atomically: a half-written record is never read). */
  async write(dir: string, record: RunRecord): Promise<void> {
    const temporary = join(dir, `record.json.${process.pid}.tmp`)
    await writeFile(temporary, JSON.stringify(record), { mode: 0o600 })
    await rename(temporary, join(dir, 'record.json'))
  }

  /** The host's copy of a run's script. */
  script(dir: string): Promise<string> {
    return readFile(join(dir, 'script.js'), 'utf8')
  }

  /** Every run record under the runs directory, by lease id. */
  async records(): Promise<Map<string, FoundRecord>> {
    const found = new Map<string, FoundRecord>()
    for (const name of await readdir(this.#dir).catch(() => [])) {
      if (!name.startsWith('run-')) continue
      const dir = join(this.#dir, name)
      try {
        const record = JSON.parse(await readFile(join(dir, 'record.json'), 'utf8')) as Partial<RunRecord>
        if (record.v === 1 && typeof record.lease === 'string' && record.name === name) found.set(record.lease, { name, dir, record: record as RunRecord })
      } catch {
        // not a run of this version (an older host kept its records in the script's own directory)
      }
    }
    return found
  }

  /** Registers a run (new, or found again after a restart). */
  add(run: R, recordDir: string): R {
    this.#runs.set(run.id, run)
    this.#recordDirs.set(run.id, recordDir)
    return run
  }

  /** A run's record directory. */
  recordDir(id: string): string | undefined {
    return this.#recordDirs.get(id)
  }

  /**
   * Keeps at most `maxFinished` finished runs; the oldest go at once, and their records once
   * `released(run)` settles (the host may still be giving back what the run held).
   */
  forgetOld(released: (run: R) => Promise<void>): void {
    const finished = [...this.#runs.values()].filter((run) => run.status !== 'running')
    for (const run of finished.slice(0, Math.max(0, finished.length - this.#maxFinished))) {
      this.#runs.delete(run.id)
      const dir = this.#recordDirs.get(run.id)
      this.#recordDirs.delete(run.id)
      if (dir) void released(run).then(() => rm(dir, { recursive: true, force: true })).catch(() => {})
    }
  }
}

/** A run as the API shows it. */
export function viewRun(run: Run): RunView {
  return {
    id: run.id,
    status: run.status,
    pid: run.child?.pid,
    exitCode: run.exitCode,
    signal: run.signal,
    exceeded: run.exceeded,
    lease: run.lease.toJSON(),
  }
}

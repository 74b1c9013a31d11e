import type { ChildProcess } from 'node:child_process'
import { basename, join } from 'node:path'
import { RunCgroup } from './cgroups.js'
import type { SandboxPlan } from './isolation.js'
import { readMounts } from './mounts.js'
import { diskUsage, makeHome, removeHome, writeIntoHome } from './run-home.js'
import { killLeftover, startScript } from './sandbox.js'

/**
 * What a run holds on the machine while its script runs. It is written to the run's record (where
 * the script cannot write), so that a host restarted after a crash lets go of it.
 */
export interface Held {
  readonly uid?: number
  readonly cgroups: readonly string[]
  readonly home: string
  readonly pid?: number
}

/** The bound that ended a script: its memory cgroup's OOM kill, `prlimit --cpu`, or its disk. */
export type Exceeded = 'memory' | 'cpu' | 'disk'

const DISK_POLL_MS = 500

/**
 * One run's sandbox, made afresh at every start: a uid of its own, cgroups, a directory of bounded
 * size with the script in it, and the command that starts it inside all of that (see
 * {@link startScript}). `release()` kills whatever is left and gives everything back.
 */
export class RunSandbox {
  /** The script's directory: its cwd and HOME. */
  readonly home: string
  /** The Unix socket the script listens on (its `PORT`). */
  readonly socket: string
  readonly #plan: SandboxPlan
  readonly #name: string
  #uid: number | undefined
  #cgroup: RunCgroup | undefined
  #child: ChildProcess | undefined
  #diskTimer: NodeJS.Timeout | undefined
  #overDisk = false
  #released: Promise<void> | undefined

  constructor(plan: SandboxPlan, name: string, recordDir: string) {
    this.#plan = plan
    this.#name = name
    this.home = homeOf(plan, name, recordDir)
    this.socket = join(this.home, 'app.sock')
  }

  /** The uid the script runs as (the host's own without per-run uids). */
  get uid(): number {
    return this.#uid ?? process.getuid?.() ?? 0
  }

  /** Takes a uid, makes the cgroups and the directory, and puts the script in it. */
  async prepare(script: string): Promise<Held> {
    try {
      const { limits } = this.#plan
      this.#uid = this.#plan.uids?.acquire(this.#name)
      if (this.#plan.cgroups.length > 0) {
        this.#cgroup = await RunCgroup.create(this.#name, this.#plan.cgroups, {
          memoryBytes: limits.memoryMb * 1024 * 1024,
          cpuPercent: limits.cpuPercent,
          maxTasks: limits.maxTasks,
        })
      }
      await makeHome(this.home, this.#plan.tmpfs ? 'tmpfs' : 'plain', limits.diskMb, this.#uid)
      await writeIntoHome(this.home, 'script.js', script, this.#uid)
      return this.held()
    } catch (err) {
      await this.release()
      throw err
    }
  }

  /** What is held now, for the run's record. */
  held(): Held {
    return {
      ...(this.#uid === undefined ? {} : { uid: this.#uid }),
      cgroups: this.#cgroup?.dirs ?? [],
      home: this.home,
      ...(this.#child?.pid === undefined ? {} : { pid: this.#child.pid }),
    }
  }

  /** Starts the script (after `prepare()`), its output appended to `log`. */
  start(log: string): ChildProcess {
    const { limits, prlimit } = this.#plan
    const child = startScript({
      home: this.home,
      socket: this.socket,
      log,
      uid: this.#uid,
      cgroupProcs: this.#cgroup?.procsFiles ?? [],
      network: this.#plan.network,
      pdeathsig: this.#plan.pdeathsig,
      prlimit: prlimit
        ? [
            `--nofile=${limits.maxOpenFiles}`,
            `--fsize=${limits.diskMb * 1024 * 1024}`,
            ...(this.#uid === undefined ? [] : [`--nproc=${limits.maxTasks}`]),
            ...(this.#plan.addressSpaceBytes === undefined ? [] : [`--as=${this.#plan.addressSpaceBytes}`]),
            ...(this.#plan.cpuSeconds === undefined ? [] : [`--cpu=${this.#plan.cpuSeconds}`]),
          ]
        : undefined,
      heapMb: limits.heapMb,
    })
    this.#child = child
    if (!this.#plan.tmpfs) this.#watchDisk(child)
    return child
  }

  /** The bound that ended the script, if one did; ask once it has exited, before `release()`. */
  exceeded(signal: NodeJS.Signals | null): Exceeded | undefined {
    if (this.#overDisk || signal === 'SIGXFSZ') return 'disk'
    if (signal === 'SIGXCPU') return 'cpu'
    if (signal === 'SIGKILL' && this.#cgroup?.killedForMemory()) return 'memory'
    return undefined
  }

  /** Kills whatever is left of the run and gives back its uid, cgroups and directory (once). */
  release(): Promise<void> {
    this.#released ??= (async () => {
      clearInterval(this.#diskTimer)
      if (this.#cgroup) await this.#cgroup.destroy()
      else if (this.#child?.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL')
      await removeHome(this.home).catch(() => {})
      if (this.#uid !== undefined) this.#plan.uids?.release(this.#uid, this.#name)
    })()
    return this.#released
  }

  /**
   * After a crash of the host: kills what a run of the previous host process left and gives back
   * what it held, as its record says. Only what bears the run's name is touched.
   */
  static async releaseLeftover(plan: SandboxPlan, name: string, recordDir: string, held: Held): Promise<void> {
    const hierarchies = readMounts().filter((mount) => mount.fstype === 'cgroup' || mount.fstype === 'cgroup2')
    const cgroups = held.cgroups.filter(
      (dir) => basename(dir) === `cogpay-${name}` && hierarchies.some((mount) => dir.startsWith(`${mount.mountPoint}/`)),
    )
    if (cgroups.length > 0) await RunCgroup.destroy(cgroups)
    const homes = [join(recordDir, 'home'), ...(plan.homesDir ? [join(plan.homesDir, name)] : [])]
    if (held.pid !== undefined) killLeftover(held.pid, held.home)
    if (homes.includes(held.home)) await removeHome(held.home).catch(() => {})
    if (held.uid !== undefined) plan.uids?.release(held.uid, name)
  }

  /** Where no tmpfs bounds the directory: its usage is checked every 500 ms, and the run killed past its disk. */
  #watchDisk(child: ChildProcess): void {
    const limit = this.#plan.limits.diskMb * 1024 * 1024
    let checking = false
    this.#diskTimer = setInterval(() => {
      if (checking) return
      checking = true
      void diskUsage(this.home, limit)
        .then((used) => {
          if (used <= limit) return
          this.#overDisk = true
          child.kill('SIGKILL')
        })
        .finally(() => (checking = false))
    }, DISK_POLL_MS)
    this.#diskTimer.unref()
    child.once('exit', () => clearInterval(this.#diskTimer))
  }
}

/** A run's directory: under the host's root-only homes directory when it has a uid of its own, else in its record's. */
function homeOf(plan: SandboxPlan, name: string, recordDir: string): string {
  return plan.homesDir ? join(plan.homesDir, name) : join(recordDir, 'home')
}

import { randomInt } from 'node:crypto'
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeDirs } from './dirs.js'
import { running } from './processes.js'

/** The uids scripts run as: one per run, never shared while it runs. */
export interface UidRange {
  /** The first uid. Default `1_900_000_000`. */
  readonly first: number
  /** How many. Default `100_000_000`. */
  readonly count: number
}

export const DEFAULT_UID_RANGE: UidRange = { first: 1_900_000_000, count: 100_000_000 }

/**
 * Hands out uids from a reserved range, one per run, with no passwd entry (setpriv needs none).
 * Each uid taken is a lock file `<dir>/<uid>` made with O_EXCL naming the host's pid and the run,
 * so that hosts on one machine (several test files at once, say) never give two runs the same uid;
 * the lock of a host that died is taken over. `dir` must be writable by the host only.
 */
export class UidPool {
  readonly #dir: string
  readonly #range: UidRange

  constructor(dir: string, range: UidRange) {
    this.#dir = dir
    this.#range = range
    makeDirs(dir, 0o700)
  }

  /** A uid no other run holds, locked for run `name`. */
  acquire(name: string): number {
    for (let attempt = 0; attempt < 64; attempt++) {
      const uid = this.#range.first + randomInt(this.#range.count)
      const lock = join(this.#dir, String(uid))
      try {
        writeFileSync(lock, `${process.pid} ${name}`, { flag: 'wx', mode: 0o600 })
        return uid
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      if (!hostAlive(lock)) {
        try {
          unlinkSync(lock)
          writeFileSync(lock, `${process.pid} ${name}`, { flag: 'wx', mode: 0o600 })
          return uid
        } catch {
          // another host took it first: try another uid
        }
      }
    }
    throw new Error(`no free uid for run ${name} after 64 tries in ${this.#range.first}…${this.#range.first + this.#range.count - 1}`)
  }

  /** Gives back run `name`'s uid (only if its lock still names that run). */
  release(uid: number, name: string): void {
    const lock = join(this.#dir, String(uid))
    try {
      if (readFileSync(lock, 'utf8').split(' ')[1] === name) unlinkSync(lock)
    } catch {
      // not held
    }
  }
}

/** Whether the host that wrote a lock still runs (a reused pid read as alive only costs a retry). */
function hostAlive(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8').split(' ')[0])
    return Number.isSafeInteger(pid) && pid > 0 && running(pid)
  } catch {
    return false
  }
}

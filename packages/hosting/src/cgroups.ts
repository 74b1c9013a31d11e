import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readMounts, type Mount } from './mounts.js'
import { sleep } from './sleep.js'

/** The cgroup controllers a run is bounded by. */
export type Controller = 'memory' | 'cpu' | 'pids'

/** Where this process may make child cgroups for one controller. */
export interface ControllerRoot {
  readonly controller: Controller
  readonly version: 1 | 2
  /** The host's own cgroup directory in that hierarchy: runs get directories under it. */
  readonly parent: string
}

/** What a run's cgroup allows. */
export interface CgroupLimits {
  readonly memoryBytes: number
  /** Percent of one core (CFS quota over a 100 ms period). */
  readonly cpuPercent: number
  /** Processes and threads. */
  readonly maxTasks: number
}

const CFS_PERIOD_US = 100_000

/**
 * Finds, for each controller, the host's own cgroup directory: cgroup v1 where the controller is
 * mounted as v1 (as on the CI machines), else cgroup v2 where the host's cgroup delegates it to its
 * children (`cgroup.subtree_control`). Runs are nested under the host's own cgroup, so they also
 * count against whatever bounds the host. Returns why a controller is missing, instead of it.
 */
export function findControllers(): Record<Controller, ControllerRoot | string> {
  const found: Record<Controller, ControllerRoot | string> = {
    memory: 'no cgroup hierarchy has the memory controller',
    cpu: 'no cgroup hierarchy has the cpu controller',
    pids: 'no cgroup hierarchy has the pids controller',
  }
  let own: string[]
  try {
    own = readFileSync('/proc/self/cgroup', 'utf8').split('\n')
  } catch {
    return { memory: 'no /proc/self/cgroup (not Linux?)', cpu: 'no /proc/self/cgroup (not Linux?)', pids: 'no /proc/self/cgroup (not Linux?)' }
  }
  let unified: Mount | undefined
  for (const { fstype, root, mountPoint, superOptions } of readMounts()) {
    if (fstype === 'cgroup2') unified ??= { fstype, root, mountPoint, superOptions }
    if (fstype !== 'cgroup') continue
    for (const controller of ['memory', 'cpu', 'pids'] as const) {
      if (!superOptions.includes(controller) || typeof found[controller] !== 'string') continue
      const path = own.map((l) => l.split(':')).find(([, names]) => names?.split(',').includes(controller))?.[2]
      const parent = path === undefined ? undefined : within(mountPoint, root, path)
      found[controller] = parent ? { controller, version: 1, parent } : `cgroup v1 ${controller}: this process's cgroup is outside the mount at ${mountPoint}`
    }
  }
  if (unified) {
    const path = own.find((l) => l.startsWith('0::'))?.slice(3)
    const parent = path === undefined ? undefined : within(unified.mountPoint, unified.root, path)
    let delegated: string[] = []
    try {
      if (parent) delegated = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').trim().split(/\s+/)
    } catch {
      // not readable: nothing delegated
    }
    for (const controller of ['memory', 'cpu', 'pids'] as const) {
      if (typeof found[controller] !== 'string') continue
      found[controller] =
        parent && delegated.includes(controller)
          ? { controller, version: 2, parent }
          : `cgroup v2: ${controller} is not delegated to the children of ${parent ?? 'this process\'s cgroup'} (its cgroup.subtree_control has "${delegated.join(' ')}")`
    }
  }
  return found
}

/** What trying a controller found: why it cannot be used, or (memory) whether swap is bounded too. */
export type ProbeResult = { readonly error: string } | { readonly error?: undefined; readonly swapBounded: boolean }

/** Checks that this process can make a child cgroup under `root` and set its limit. */
export function probeController(root: ControllerRoot, limits: CgroupLimits): ProbeResult {
  const dir = join(root.parent, `cogpay-probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}`)
  try {
    mkdirSync(dir)
  } catch (err) {
    return { error: `cannot make a cgroup under ${root.parent}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }
  }
  try {
    writeLimit(dir, root, limits)
    return { swapBounded: existsSync(join(dir, root.version === 1 ? 'memory.memsw.limit_in_bytes' : 'memory.swap.max')) }
  } catch (err) {
    return { error: `cannot set the ${root.controller} limit of a cgroup under ${root.parent}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }
  } finally {
    try {
      rmdirSync(dir)
    } catch {
      // an empty cgroup we just made; nothing to clean if this fails
    }
  }
}

/**
 * One run's cgroups: one directory per hierarchy, named after the run. The script joins them before
 * it runs (see `cgroup.procs` in the start wrapper); the host kills what is inside and removes them
 * when the run ends, and on resume after a crash.
 */
export class RunCgroup {
  /** The directories, one per hierarchy (v2 has one for all controllers). */
  readonly dirs: readonly string[]
  readonly #memory: { dir: string; version: 1 | 2 } | undefined

  private constructor(dirs: readonly string[], memory: { dir: string; version: 1 | 2 } | undefined) {
    this.dirs = dirs
    this.#memory = memory
  }

  /** Makes the run's cgroups with their limits (a leftover of the same name is emptied first). */
  static async create(name: string, roots: readonly ControllerRoot[], limits: CgroupLimits): Promise<RunCgroup> {
    const byDir = new Map<string, ControllerRoot[]>()
    for (const root of roots) {
      const dir = join(root.parent, `cogpay-${name}`)
      byDir.set(dir, [...(byDir.get(dir) ?? []), root])
    }
    const memoryRoot = roots.find((root) => root.controller === 'memory')
    const cgroup = new RunCgroup(
      [...byDir.keys()],
      memoryRoot ? { dir: join(memoryRoot.parent, `cogpay-${name}`), version: memoryRoot.version } : undefined,
    )
    await RunCgroup.destroy(cgroup.dirs)
    try {
      for (const [dir, rootsHere] of byDir) {
        mkdirSync(dir)
        for (const root of rootsHere) writeLimit(dir, root, limits)
      }
    } catch (err) {
      await RunCgroup.destroy(cgroup.dirs)
      throw err
    }
    return cgroup
  }

  /** The `cgroup.procs` files the script's process writes its pid to before it execs. */
  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'))
  }

  /** True when the kernel's OOM killer killed something in this run's memory cgroup. */
  killedForMemory(): boolean {
    if (!this.#memory) return false
    const file = this.#memory.version === 1 ? 'memory.oom_control' : 'memory.events'
    try {
      const match = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.#memory.dir, file), 'utf8'))
      return match !== null && Number(match[1]) > 0
    } catch {
      return false
    }
  }

  /** Kills every process in the cgroups and removes them (bounded: about 2 s at most). */
  destroy(): Promise<void> {
    return RunCgroup.destroy(this.dirs)
  }

  /** Kills what is in these cgroup directories (a run's, found in its record) and removes them. */
  static async destroy(dirs: readonly string[]): Promise<void> {
    for (let attempt = 0; attempt < 200; attempt++) {
      let left = 0
      for (const dir of dirs) {
        if (!existsSync(dir)) continue
        left++
        if (attempt === 0 && existsSync(join(dir, 'cgroup.kill'))) {
          try {
            writeFileSync(join(dir, 'cgroup.kill'), '1')
          } catch {
            // fall back to killing each process below
          }
        }
        for (const pid of tasks(dir)) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // gone already
          }
        }
        try {
          rmdirSync(dir)
          left--
        } catch {
          // EBUSY until the killed processes have exited: try again shortly
        }
      }
      if (left === 0) return
      await sleep(10)
    }
  }
}

function tasks(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number)
      .filter((pid) => Number.isSafeInteger(pid) && pid > 1)
  } catch {
    return []
  }
}

function writeLimit(dir: string, root: ControllerRoot, limits: CgroupLimits): void {
  const write = (file: string, value: string, optional = false) => {
    const path = join(dir, file)
    if (optional && !existsSync(path)) return
    writeFileSync(path, value)
  }
  const quota = Math.max(1000, Math.round((limits.cpuPercent / 100) * CFS_PERIOD_US))
  if (root.version === 1) {
    if (root.controller === 'memory') {
      write('memory.limit_in_bytes', String(limits.memoryBytes))
      // memory + swap: the same bound, so the script cannot swap past it.
      write('memory.memsw.limit_in_bytes', String(limits.memoryBytes), true)
    }
    if (root.controller === 'cpu') {
      write('cpu.cfs_period_us', String(CFS_PERIOD_US))
      write('cpu.cfs_quota_us', String(quota))
    }
    if (root.controller === 'pids') write('pids.max', String(limits.maxTasks))
    return
  }
  if (root.controller === 'memory') {
    write('memory.max', String(limits.memoryBytes))
    write('memory.swap.max', '0', true)
  }
  if (root.controller === 'cpu') write('cpu.max', `${quota} ${CFS_PERIOD_US}`)
  if (root.controller === 'pids') write('pids.max', String(limits.maxTasks))
}

/** The directory of cgroup `path` (as /proc/self/cgroup names it) in a hierarchy mounted at `mountPoint`. */
function within(mountPoint: string, root: string, path: string): string | undefined {
  if (root === '/') return join(mountPoint, path)
  if (path === root || path.startsWith(`${root}/`)) return join(mountPoint, path.slice(root.length))
  return undefined
}

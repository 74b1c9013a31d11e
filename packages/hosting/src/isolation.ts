import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeDirs } from './dirs.js'
import { findControllers, probeController, type ControllerRoot } from './cgroups.js'
import { probeTmpfs } from './run-home.js'
import { UidPool, type UidRange } from './uid-pool.js'

/**
 * `strict`: the host refuses to start (throws `HOSTING_ISOLATION_UNAVAILABLE`) unless every
 * mechanism is in force. `best-effort`: it uses what the machine offers, falls back where it can,
 * and says at start what is weaker or missing.
 */
export type IsolationMode = 'strict' | 'best-effort'

/** What keeps a script in its place. */
export type IsolationMechanism = 'user' | 'memory' | 'cpu' | 'processes' | 'disk' | 'network' | 'lifetime' | 'records'

/** How one mechanism is provided on this machine. */
export interface MechanismReport {
  /** `isolated`: in force; `fallback`: a weaker bound is (see `how`); `missing`: none. */
  readonly level: 'isolated' | 'fallback' | 'missing'
  /** What is used, with its numbers, or why it is missing. */
  readonly how: string
}

/** What the host isolates, found out when it starts (`hosting.isolation`). */
export interface IsolationReport {
  readonly mode: IsolationMode
  readonly mechanisms: { readonly [M in IsolationMechanism]: MechanismReport }
  /** The mechanisms that are not `isolated` (always empty in strict mode, which refuses to start otherwise). */
  readonly weak: readonly IsolationMechanism[]
  /** One line for a log. */
  readonly summary: string
}

/** What the host will use for each run, as found on this machine. */
export interface SandboxPlan {
  /** Per-run uids; `undefined`: scripts run as the host's own uid. */
  readonly uids: UidPool | undefined
  /** Where run directories go when they run under their own uid (root-owned, searchable). */
  readonly homesDir: string | undefined
  readonly cgroups: readonly ControllerRoot[]
  /** A tmpfs of `diskMb` per run. */
  readonly tmpfs: boolean
  /** The command prefix that gives a script an empty network namespace, if one works. */
  readonly network: readonly string[] | undefined
  /** `setpriv --pdeathsig KILL` works. */
  readonly pdeathsig: boolean
  readonly prlimit: boolean
  /** `prlimit --as` where there is no memory cgroup. */
  readonly addressSpaceBytes: number | undefined
  /** `prlimit --cpu` where there is no cpu cgroup. */
  readonly cpuSeconds: number | undefined
  readonly limits: SandboxLimits
}

/** What each run may use. */
export interface SandboxLimits {
  readonly memoryMb: number
  readonly heapMb: number
  readonly cpuPercent: number
  readonly cpuSeconds: number
  readonly diskMb: number
  readonly maxTasks: number
  readonly maxOpenFiles: number
}

/** Inputs of {@link planIsolation}. */
export interface IsolationInputs {
  readonly mode: IsolationMode
  readonly runsDir: string
  /** Root-only state: uid locks and run directories. */
  readonly stateDir: string
  readonly uidRange: UidRange
  readonly limits: SandboxLimits
}

/** What was found on this machine: the plan, and why each missing piece is missing. */
interface Probed {
  readonly plan: SandboxPlan
  readonly why: { readonly user?: string; readonly network?: string; readonly tmpfs?: string; readonly pdeathsig?: string; readonly memory?: string; readonly cpu?: string; readonly pids?: string }
  readonly networkPrefix: readonly string[]
  /** How swap is bounded for a memory cgroup. */
  readonly swap: string
}

const probes = new Map<string, Probed>()

/**
 * Finds out which mechanisms work here by trying each one (a uid switch, a network namespace, a
 * cgroup, a tmpfs mount), once per process and set of limits: nothing is assumed from the uid
 * alone. The host starts every script with the plan this returns, and reports it.
 */
export function planIsolation(inputs: IsolationInputs): { plan: SandboxPlan; report: IsolationReport } {
  const key = JSON.stringify([inputs.stateDir, inputs.uidRange, inputs.limits])
  let probed = probes.get(key)
  if (!probed) {
    probed = probe(inputs)
    probes.set(key, probed)
  }
  return { plan: probed.plan, report: describe(probed, inputs) }
}

function probe(inputs: IsolationInputs): Probed {
  const { limits, uidRange } = inputs
  const hostUid = process.getuid?.() ?? -1
  const root = hostUid === 0
  const works = (argv: string[]) => {
    const result = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 10_000 })
    return result.status === 0 ? undefined : (result.stderr?.trim() || result.error?.message || `exit ${result.status}`).split('\n')[0]!
  }

  const pdeathsig = works(['setpriv', '--pdeathsig', 'KILL', '--', 'true'])
  const prlimit = works(['prlimit', '--version']) === undefined

  // A uid of its own: root, setpriv, a uid this kernel (or user namespace) maps, Node runnable by it.
  let uids: UidPool | undefined
  let homesDir: string | undefined
  let user = root ? undefined : `the host runs as uid ${hostUid}, not root`
  if (!user) {
    const switched = works(['setpriv', `--reuid=${uidRange.first}`, `--regid=${uidRange.first}`, '--clear-groups', '--', process.execPath, '--version'])
    if (switched) user = `setpriv cannot switch to uid ${uidRange.first} and run Node: ${switched}`
  }
  if (!user) {
    try {
      makeDirs(join(inputs.stateDir, 'homes'), 0o711)
      uids = new UidPool(join(inputs.stateDir, 'uids'), uidRange)
      homesDir = join(inputs.stateDir, 'homes')
    } catch (err) {
      user = `cannot make ${inputs.stateDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
    }
  }

  const networkPrefix = root ? ['unshare', '--net', '--'] : ['unshare', '--user', '--map-current-user', '--net', '--']
  const network = works([...networkPrefix, 'true'])

  const cgroupLimits = { memoryBytes: limits.memoryMb * 1024 * 1024, cpuPercent: limits.cpuPercent, maxTasks: limits.maxTasks }
  const controllers = findControllers()
  const cgroups: ControllerRoot[] = []
  const why: Record<string, string | undefined> = { user, network, pdeathsig }
  let swapBounded = false
  for (const name of ['memory', 'cpu', 'pids'] as const) {
    const found = controllers[name]
    if (typeof found === 'string') {
      why[name] = found
      continue
    }
    const tried = probeController(found, cgroupLimits)
    if (tried.error !== undefined) why[name] = tried.error
    else {
      cgroups.push(found)
      if (name === 'memory') swapBounded = tried.swapBounded
    }
  }
  why.tmpfs = homesDir ? probeTmpfs(homesDir) : 'run directories are not on a host-only mount point (no uid of their own)'
  const has = (name: string) => cgroups.some((c) => c.controller === name)

  return {
    plan: {
      uids,
      homesDir,
      cgroups,
      tmpfs: why.tmpfs === undefined,
      network: network === undefined ? networkPrefix : undefined,
      pdeathsig: pdeathsig === undefined,
      prlimit,
      addressSpaceBytes: !has('memory') && prlimit ? nodeReservation(limits.heapMb) + limits.memoryMb * 1024 * 1024 : undefined,
      cpuSeconds: !has('cpu') && prlimit ? limits.cpuSeconds : undefined,
      limits,
    },
    why,
    networkPrefix,
    swap: swapBounded ? 'no swap' : hasSwap() ? 'swap NOT bounded (no swap accounting in this kernel)' : 'no swap on this machine',
  }
}

/** True when the machine has a swap device or file. */
function hasSwap(): boolean {
  try {
    return readFileSync('/proc/swaps', 'utf8').trim().split('\n').length > 1
  } catch {
    return false
  }
}

function describe({ plan, why, networkPrefix, swap }: Probed, inputs: IsolationInputs): IsolationReport {
  const { limits, uidRange } = inputs
  const hostUid = process.getuid?.() ?? -1
  const mib = (bytes: number) => Math.round(bytes / (1024 * 1024))
  const cgroup = (name: string) => plan.cgroups.find((c) => c.controller === name)
  const memory = cgroup('memory')
  const cpu = cgroup('cpu')
  const pids = cgroup('pids')
  const unshare = networkPrefix.slice(0, -1).join(' ')
  const mechanisms: IsolationReport['mechanisms'] = {
    user: plan.uids
      ? { level: 'isolated', how: `a uid of its own per run, from ${uidRange.first}–${uidRange.first + uidRange.count - 1} (setpriv, no passwd entry, no groups): it cannot signal the host or another run` }
      : { level: 'missing', how: `${why.user}: scripts run as the host's own uid and can signal the host and each other` },
    memory: memory
      ? { level: 'isolated', how: `cgroup v${memory.version} memory: ${limits.memoryMb} MiB per run, all of it (V8 heap ${limits.heapMb} MiB, buffers, native memory, the files in its directory), ${swap}; killed past it` }
      : plan.addressSpaceBytes !== undefined
        ? { level: 'fallback', how: `prlimit --as: ${mib(plan.addressSpaceBytes)} MiB of address space (Node's own reservation plus ${limits.memoryMb} MiB), V8 heap ${limits.heapMb} MiB; no cgroup (${why.memory})` }
        : { level: 'missing', how: `the V8 heap limit (${limits.heapMb} MiB) only: no cgroup (${why.memory}) and no prlimit` },
    cpu: cpu
      ? { level: 'isolated', how: `cgroup v${cpu.version} cpu: ${limits.cpuPercent}% of one core (CFS quota)` }
      : plan.cpuSeconds !== undefined
        ? { level: 'fallback', how: `prlimit --cpu: killed after ${plan.cpuSeconds} s of CPU time per start, not throttled; no cgroup (${why.cpu})` }
        : { level: 'missing', how: `no cgroup (${why.cpu}) and no prlimit` },
    processes: pids
      ? { level: 'isolated', how: `cgroup v${pids.version} pids: at most ${limits.maxTasks} processes and threads; Node's permission model: no child processes, no workers` }
      : { level: 'fallback', how: `${plan.uids && plan.prlimit ? `prlimit --nproc ${limits.maxTasks} on its own uid, and ` : ''}Node's permission model (no child processes, no workers); no pids cgroup (${why.pids})` },
    disk: plan.tmpfs
      ? { level: 'isolated', how: `a tmpfs of ${limits.diskMb} MiB per run (ENOSPC past it); its pages count against its memory` }
      : { level: 'fallback', how: `its directory's usage checked every 500 ms, killed past ${limits.diskMb} MiB${plan.prlimit ? `; prlimit --fsize ${limits.diskMb} MiB per file` : ''}; no tmpfs (${why.tmpfs})` },
    network: plan.network
      ? { level: 'isolated', how: `an empty network namespace (${unshare}): no IP at all, not the host's 127.0.0.1 either; the host reaches the script on the Unix socket in PORT` }
      : { level: 'missing', how: `${unshare} failed (${why.network}): the script can connect to the network and to the host's own ports` },
    lifetime: plan.pdeathsig
      ? { level: 'isolated', how: `its own process group and a parent-death signal (setpriv --pdeathsig KILL)${plan.cgroups.length > 0 ? '; its cgroups are emptied when the run ends and on resume' : ''}` }
      : { level: 'missing', how: `setpriv --pdeathsig failed (${why.pdeathsig}): a script outlives a host killed with SIGKILL, until resume() kills it` },
    records: plan.uids
      ? { level: 'isolated', how: `run records (record.json, pid, the script's copy, logs) in ${inputs.runsDir}, mode 0700, owned by uid ${hostUid}: out of reach of the scripts' uids` }
      : { level: 'fallback', how: `run records in ${inputs.runsDir}, outside the script's directory: out of its reach by Node's permission model only (same uid)` },
  }
  const names = Object.keys(mechanisms) as IsolationMechanism[]
  const weak = names.filter((name) => mechanisms[name].level !== 'isolated')
  const summary =
    `cogpay hosting isolation (${inputs.mode}): ` +
    (weak.length === 0
      ? `every mechanism in force (${names.join(', ')})`
      : `in force: ${names.filter((name) => !weak.includes(name)).join(', ') || 'none'}; ` +
        weak.map((name) => `${name} ${mechanisms[name].level}: ${mechanisms[name].how}`).join('; '))
  return { mode: inputs.mode, mechanisms, weak, summary }
}

/** The address space Node reserves for itself before a script allocates anything, plus a margin. */
function nodeReservation(heapMb: number): number {
  const result = spawnSync(
    process.execPath,
    [`--max-old-space-size=${heapMb}`, '-e', "process.stdout.write(/VmPeak:\\s+(\\d+)/.exec(require('fs').readFileSync('/proc/self/status','utf8'))[1])"],
    { encoding: 'utf8', timeout: 10_000 },
  )
  const kib = Number(result.stdout)
  // Measured: about 710 MiB on Node 20 x64. Without /proc, assume twice that.
  return (Number.isSafeInteger(kib) && kib > 0 ? kib * 1024 : 1536 * 1024 * 1024) + 64 * 1024 * 1024
}

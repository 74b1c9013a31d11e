import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readlinkSync } from 'node:fs'

/** How one script is started: every wrapper that applies, outermost first. */
export interface ScriptCommand {
  /** Its own directory: cwd, HOME, and the only path Node's permission model lets it read or write. */
  readonly home: string
  /** The Unix socket path it is told to listen on (`PORT`). */
  readonly socket: string
  /** Its stdout and stderr (a file the script cannot open by name). */
  readonly log: string
  /** The uid (and gid) it runs as; `undefined`: the host's own. */
  readonly uid: number | undefined
  /** `cgroup.procs` files it joins before anything of it runs. */
  readonly cgroupProcs: readonly string[]
  /** The prefix that puts it in an empty network namespace. */
  readonly network: readonly string[] | undefined
  readonly pdeathsig: boolean
  /** `prlimit` options (`--nofile=…`), or `undefined` without prlimit. */
  readonly prlimit: readonly string[] | undefined
  readonly heapMb: number
}

/**
 * The start wrapper: the shell, still as the host, writes its own pid into each `cgroup.procs`
 * given before `--`, then execs the rest. So the script is inside its cgroups before its first
 * instruction, and there is no window in which it runs unbounded. Exit 125: it could not join.
 * (The shell's own PWD is unset: the script's environment is PATH, HOME and PORT only.)
 */
const JOIN_CGROUPS = 'unset PWD OLDPWD; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'

/**
 * Right after setpriv has set the parent-death signal: if the host died before that (the signal
 * was then set too late to ever come), stop here. Checked after the signal is set, so a host that
 * dies later is always noticed. `$0` is the host's pid.
 */
const CHECK_PARENT = 'unset PWD OLDPWD; [ "$PPID" = "$0" ] || exit 126; exec "$@"'

/**
 * Starts `script.js` in its directory: [join cgroups] → [unshare: no network] → [setpriv: its own
 * uid, no groups, no new privileges, killed when the host dies] → [prlimit] → node under its
 * permission model (read and write its directory only, no child processes, no workers) with a heap
 * limit and an environment of `PATH`, `HOME` and `PORT` only. It gets its own process group, so a
 * signal to the host's group (Ctrl-C) is the host's to act on.
 */
export function startScript(command: ScriptCommand): ChildProcess {
  let argv = [
    process.execPath,
    '--experimental-permission',
    '--disable-warning=ExperimentalWarning',
    `--allow-fs-read=${command.home}`,
    `--allow-fs-write=${command.home}`,
    `--max-old-space-size=${command.heapMb}`,
    'script.js',
  ]
  if (command.prlimit) argv = ['prlimit', ...command.prlimit, '--', ...argv]
  if (command.uid !== undefined || command.pdeathsig) argv = ['/bin/sh', '-c', CHECK_PARENT, String(process.pid), ...argv]
  if (command.uid !== undefined) {
    argv = ['setpriv', `--reuid=${command.uid}`, `--regid=${command.uid}`, '--clear-groups', '--no-new-privs', '--pdeathsig', 'KILL', '--', ...argv]
  } else if (command.pdeathsig) {
    argv = ['setpriv', '--pdeathsig', 'KILL', '--', ...argv]
  }
  if (command.network) argv = [...command.network, ...argv]
  if (command.cgroupProcs.length > 0) argv = ['/bin/sh', '-c', JOIN_CGROUPS, 'sh', ...command.cgroupProcs, '--', ...argv]
  const log = openSync(command.log, 'a', 0o600)
  try {
    return spawn(argv[0]!, argv.slice(1), {
      cwd: command.home,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: command.home, PORT: command.socket },
      stdio: ['ignore', log, log],
      detached: true,
    })
  } finally {
    // The child has its own copy of the log's descriptor.
    closeSync(log)
  }
}

/** Kills a script a previous host process left running, by its pid (checked by its working directory). */
export function killLeftover(pid: number, home: string): void {
  try {
    if (!Number.isSafeInteger(pid) || pid <= 1) return
    if (readlinkSync(`/proc/${pid}/cwd`) !== home) return
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

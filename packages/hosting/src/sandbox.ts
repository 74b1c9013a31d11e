import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'

/** What a script may use. */
export interface SandboxLimits {
  /** V8 heap limit, in MiB. */
  readonly memoryMb: number
  /** Largest file the script may write, in bytes. Default 16 MiB. */
  readonly maxFileBytes?: number
  /** Most files the script may have open. Default `256`. */
  readonly maxOpenFiles?: number
}

/**
 * Starts `script.js` in `dir` as a child process: under Node's permission model (it may read and
 * write `dir` only, and start no processes), a heap limit, `prlimit` on open files and file size
 * where `prlimit` exists, and an environment of `PATH`, `HOME` (its directory) and `PORT` only.
 * Its output goes to `dir/output.log`; its pid to `dir/pid`, so that a restarted host can find it.
 */
export function startScript(dir: string, port: number, limits: SandboxLimits): ChildProcess {
  const argv = withPrlimit(
    [
      process.execPath,
      '--experimental-permission',
      '--disable-warning=ExperimentalWarning',
      `--allow-fs-read=${dir}`,
      `--allow-fs-write=${dir}`,
      `--max-old-space-size=${limits.memoryMb}`,
      'script.js',
    ],
    limits,
  )
  const log = openSync(join(dir, 'output.log'), 'a')
  let child: ChildProcess
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: dir,
      env: { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, PORT: String(port) },
      stdio: ['ignore', log, log],
    })
  } finally {
    // The child has its own copy of the log's descriptor.
    closeSync(log)
  }
  if (child.pid) {
    try {
      writeFileSync(join(dir, 'pid'), String(child.pid))
    } catch {
      // The directory is gone; so is the run.
    }
  }
  return child
}

/** Kills a script that a previous host process left running in `dir` (checked by its working directory). */
export function killLeftover(dir: string): void {
  try {
    const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'))
    if (!Number.isSafeInteger(pid) || pid <= 1) return
    if (readlinkSync(`/proc/${pid}/cwd`) !== dir) return
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

/** A port for a script to listen on (free now; a race with another process is possible). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function withPrlimit(argv: string[], limits: SandboxLimits): string[] {
  if (!hasPrlimit()) return argv
  const files = limits.maxOpenFiles ?? 256
  const size = limits.maxFileBytes ?? 16 * 1024 * 1024
  return ['prlimit', `--nofile=${files}`, `--fsize=${size}`, '--', ...argv]
}

let prlimit: boolean | undefined
function hasPrlimit(): boolean {
  prlimit ??= spawnSync('prlimit', ['--version'], { stdio: 'ignore' }).status === 0
  return prlimit
}

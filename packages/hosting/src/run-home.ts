import { execFile, spawnSync } from 'node:child_process'
import { chown, lstat, open, readdir, rm, rmdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { makeDirs } from './dirs.js'
import { readMounts } from './mounts.js'

const run = promisify(execFile)

/** How a run's directory is bounded on disk. */
export type HomeKind = 'tmpfs' | 'plain'

/**
 * Makes a run's directory (its HOME and cwd): a tmpfs of `diskMb` owned by `uid` when the host
 * may mount (the disk bound is then the kernel's: ENOSPC), else a plain directory, owned by `uid`
 * when there is one. A leftover of the same path (a crashed host) is removed first.
 */
export async function makeHome(path: string, kind: HomeKind, diskMb: number, uid: number | undefined): Promise<void> {
  await removeHome(path)
  makeDirs(path, 0o700)
  if (kind === 'tmpfs') {
    const owner = uid ?? process.getuid?.() ?? 0
    // Inodes cost memory outside `size`: bound them too.
    const options = `size=${diskMb}m,nr_inodes=${Math.max(1024, diskMb * 256)},mode=0700,uid=${owner},gid=${owner},nosuid,nodev,noexec`
    await run('mount', ['-t', 'tmpfs', '-o', options, 'cogpay-run', path])
  } else if (uid !== undefined) {
    await chown(path, uid, uid)
  }
}

/**
 * Writes a file into a run's directory as the host. The script owns that directory, so the name
 * may be a symlink it planted: the old entry is unlinked, and the file is made with O_EXCL (which
 * never follows a symlink), then given to `uid`.
 */
export async function writeIntoHome(home: string, name: string, content: string, uid: number | undefined): Promise<void> {
  const path = join(home, name)
  await rm(path, { force: true, recursive: true })
  const file = await open(path, 'wx', 0o600)
  try {
    await file.writeFile(content)
    if (uid !== undefined) await file.chown(uid, uid)
  } finally {
    await file.close()
  }
}

/** Unmounts (if mounted) and removes a run's directory. */
export async function removeHome(path: string): Promise<void> {
  if (isMountPoint(path)) {
    await run('umount', [path]).catch(() => run('umount', ['-l', path]))
    await rmdir(path).catch(() => {})
    return
  }
  await rm(path, { recursive: true, force: true })
}

/** Checks once that this process can mount a tmpfs (root, with CAP_SYS_ADMIN, and `mount` exists). */
export function probeTmpfs(base: string): string | undefined {
  const dir = join(base, `probe-${process.pid}-${Math.random().toString(36).slice(2, 10)}`)
  const mount = spawnSync('sh', ['-c', 'mkdir -p "$1" && mount -t tmpfs -o size=1m cogpay-probe "$1" && umount "$1"; e=$?; rmdir "$1"; exit $e', 'sh', dir], {
    encoding: 'utf8',
  })
  return mount.status === 0 ? undefined : `cannot mount a tmpfs: ${(mount.stderr || mount.error?.message || `exit ${mount.status}`).trim()}`
}

/**
 * Bytes a run's directory uses (allocated blocks), for the polled disk bound where no tmpfs can
 * be mounted. Symlinks are not followed. Stops counting past `limit` (the answer is then > limit).
 */
export async function diskUsage(path: string, limit: number): Promise<number> {
  let total = 0
  const pending = [path]
  for (let dir = pending.pop(); dir !== undefined && total <= limit; dir = pending.pop()) {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => [])
    for (const entry of entries) {
      const full = join(dir, entry.name)
      const stats = await lstat(full).catch(() => undefined)
      if (!stats) continue
      // At least one block per entry: a million empty files are not free.
      total += Math.max(stats.blocks * 512, 512)
      if (entry.isDirectory()) pending.push(full)
      if (total > limit) break
    }
  }
  return total
}

function isMountPoint(path: string): boolean {
  return readMounts().some((mount) => mount.mountPoint === path)
}

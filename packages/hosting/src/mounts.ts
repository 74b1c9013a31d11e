import { readFileSync } from 'node:fs'

/** One line of /proc/self/mountinfo. */
export interface Mount {
  /** The directory of the filesystem that is mounted (for cgroups: the cgroup at the mount's top). */
  readonly root: string
  readonly mountPoint: string
  readonly fstype: string
  readonly superOptions: readonly string[]
}

/** This process's mounts; empty where there is no /proc (not Linux). */
export function readMounts(): Mount[] {
  let text: string
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  const mounts: Mount[] = []
  for (const line of text.split('\n')) {
    // id parent major:minor root mountPoint options [optional…] - fstype source superOptions
    const [left, right] = line.split(' - ')
    if (!left || !right) continue
    const fields = left.split(' ')
    const [fstype = '', , superOptions = ''] = right.split(' ')
    mounts.push({ root: unescape(fields[3] ?? ''), mountPoint: unescape(fields[4] ?? ''), fstype, superOptions: superOptions.split(',') })
  }
  return mounts
}

/** mountinfo writes space, tab, newline and backslash as octal escapes. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)))
}

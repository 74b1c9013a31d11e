import { readFileSync } from 'node:fs'

/** True when process `pid` runs: not gone, and not a zombie (which `kill(pid, 0)` would count). */
export function running(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]
    return state !== 'Z' && state !== 'X'
  } catch {
    return false
  }
}

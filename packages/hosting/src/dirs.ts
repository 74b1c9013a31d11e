import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'

/**
 * `mkdir -p`, one component at a time. Node's `{ recursive: true }` loops forever where mkdir
 * answers ENOENT under a parent that exists (under /proc, for one): this fails instead.
 */
export function makeDirs(path: string, mode: number): void {
  let current = ''
  for (const part of resolve(path).split('/').filter(Boolean)) {
    current += `/${part}`
    try {
      mkdirSync(current, { mode })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
}

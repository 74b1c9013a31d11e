import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

/** A full garbage collection, by whatever means this process has (the bench forks with --expose-gc). */
export function findGc(): { run: () => void; how: string } {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return { run: exposed, how: '--expose-gc' }
  try {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    return { run: gc, how: 'v8.setFlagsFromString' }
  } catch {
    return { run: () => {}, how: 'none (no gc: figures include garbage)' }
  }
}

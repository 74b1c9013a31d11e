/**
 * The child's side of the bench's IPC (see bench/child-handle.ts for the parent's): a child
 * process serves named commands, each taking one argument, and answers every call by its id. Every
 * child also answers the built-in ones: its CPU time, its memory after a full collection, and a
 * CPU profile on demand.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { findGc } from './gc.ts'

/** A child's commands: each takes one argument (or none) and may answer asynchronously. */
export type Commands = { [command: string]: (arg: any) => unknown }

/** A call from the parent (`exit` is understood by every child). */
export interface Call {
  id: number
  command: string
  arg: unknown
}
/** The answer to a call. */
export type Answer = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string }
/** The first message of every child: it serves its commands from now on. */
export type Hello = { ready: true }

/** CPU time used by a process so far (`process.cpuUsage()`), in microseconds. */
export interface CpuUsage {
  user: number
  system: number
}

/** Memory of a process after a full collection (bytes), and how that collection was made. */
export interface MemorySample {
  heapUsed: number
  rss: number
  external: number
  arrayBuffers: number
  gc: string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let profiler: Session | undefined

/** Commands every child answers, whatever its role (ChildHandle has a method for each). */
const builtins = {
  cpuUsage: (): CpuUsage => process.cpuUsage(),
  /** Starts V8's sampling profiler in this process (for BENCH_PROFILE). */
  async profileStart(): Promise<void> {
    profiler = new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: 200 })
    await profiler.post('Profiler.start')
  },
  /** Stops the profiler and writes what it sampled to `file` (a .cpuprofile that Chrome DevTools opens). */
  async profileStop(arg: { file: string }): Promise<void> {
    if (!profiler) throw new Error('profileStop: no profile was started')
    const { profile } = await profiler.post('Profiler.stop')
    // V8 charges the time Profiler.start took (hundreds of ms in a process with much code) to the
    // first sample: drop it, so the profile covers only what ran after the start.
    const first = profile.timeDeltas?.[0] ?? 0
    if (profile.timeDeltas?.length) {
      profile.timeDeltas[0] = 0
      profile.startTime += first
    }
    writeFileSync(arg.file, JSON.stringify(profile))
    profiler.disconnect()
    profiler = undefined
  },
  /** Memory after letting close timers run and collecting twice (weak refs, finalizers). */
  async memory(): Promise<MemorySample> {
    const gc = findGc()
    await sleep(300)
    gc.run()
    await sleep(50)
    gc.run()
    const { heapUsed, rss, external, arrayBuffers } = process.memoryUsage()
    return { heapUsed, rss, external, arrayBuffers, gc: gc.how }
  },
}

/**
 * Serves `commands` (and the built-in ones) to the parent, then says it is ready. `onExit` runs
 * (bounded by the parent's patience) when the parent asks the child to exit. A child whose parent
 * goes away exits too.
 */
export function serve<C extends Commands>(commands: C, onExit: () => Promise<void> = async () => {}): C {
  const all: Commands = { ...builtins, ...commands }
  const send = (message: Answer | Hello) => process.send?.(message)
  process.on('disconnect', () => process.exit(1))
  process.on('message', async (message: Call) => {
    if (message.command === 'exit') {
      await Promise.race([onExit().catch(() => {}), sleep(3000)])
      process.exit(0)
    }
    const command = all[message.command]
    try {
      if (!command) throw new Error(`no such command: ${message.command}`)
      send({ id: message.id, ok: true, value: await command(message.arg) })
    } catch (err) {
      send({ id: message.id, ok: false, error: (err as Error)?.stack ?? String(err) })
    }
  })
  send({ ready: true })
  return commands
}

/**
 * The parent's side of the bench's IPC: bench/run.ts forks each role (hub, server, load generator,
 * memory sides) with `--import tsx` and calls its commands (bench/serve.ts) by name over Node's
 * IPC channel, with advanced serialization so that bigints and byte arrays cross as they are.
 * The loader (tsx) is always this tree's; a child's own imports resolve from where it is forked.
 * Workspace packages run from their build output (dist/), unless BENCH_FROM_SOURCE=1.
 * Every call has a timeout; a child that exits fails its calls at once; every child is killed when
 * the parent ends, however it ends.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Answer, Call, Commands, CpuUsage, MemorySample } from './serve.ts'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * BENCH_FROM_SOURCE=1: the children run the workspace packages' TypeScript through tsx, as the
 * tests do, instead of their tsc build in dist/ (what npm users run; bench/dist-hooks.mjs).
 */
export const fromSource = process.env.BENCH_FROM_SOURCE === '1'

const live = new Set<ChildProcess>()
/** Kills every child still alive, at once (no goodbyes): on any way out of the parent. */
function killAll(): void {
  for (const child of live) child.kill('SIGKILL')
  live.clear()
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** One forked child, from the parent's side: call its commands by name. */
export class ChildHandle<C extends Commands> {
  readonly name: string
  readonly process: ChildProcess
  #nextId = 1
  readonly #calls = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>()
  #exit: string | undefined

  private constructor(name: string, child: ChildProcess) {
    this.name = name
    this.process = child
  }

  /**
   * Forks `file` (relative to `from.benchDir`: bench/ itself unless a transport's tree says
   * otherwise, see bench/transport-tree.ts) as `name`, in `from.root`, with `env` added to this
   * process's environment, and resolves once it is ready (within `readyMs`).
   */
  static async start<C extends Commands>(
    name: string,
    file: string,
    options: { env?: Record<string, string>; args?: string[]; readyMs?: number; from?: { benchDir: string; root: string } } = {},
  ): Promise<ChildHandle<C>> {
    const path = options.from ? join(options.from.benchDir, file) : fileURLToPath(new URL(file, import.meta.url))
    const child = fork(path, options.args ?? [], {
      execArgv: ['--expose-gc', '--import', import.meta.resolve('tsx'), ...(fromSource ? [] : ['--import', import.meta.resolve('./use-dist.mjs')])],
      env: { ...process.env, ...options.env },
      ...(options.from ? { cwd: options.from.root } : {}),
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced',
    })
    live.add(child)
    const handle = new ChildHandle<C>(name, child)
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${options.readyMs ?? 30_000} ms`)), options.readyMs ?? 30_000)
      child.once('message', () => {
        clearTimeout(timer)
        resolve()
      })
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`${name} exited before it was ready (code ${code}, signal ${signal})`))
      })
    })
    child.on('exit', (code, signal) => {
      live.delete(child)
      handle.#exit = `${name} exited (code ${code}, signal ${signal})`
      for (const call of handle.#calls.values()) call.reject(new Error(handle.#exit))
      handle.#calls.clear()
    })
    try {
      await ready
    } catch (err) {
      child.kill('SIGKILL')
      throw err
    }
    child.on('message', (answer: Answer) => {
      const call = handle.#calls.get(answer.id)
      if (!call) return
      handle.#calls.delete(answer.id)
      if (answer.ok) call.resolve(answer.value)
      else call.reject(new Error(`${name}: ${answer.error}`))
    })
    return handle
  }

  /** Runs `command` in the child; rejects if it fails, the child exits, or `timeoutMs` passes. */
  call<K extends keyof C & string>(
    command: K,
    arg: Parameters<C[K]>[0],
    timeoutMs: number,
  ): Promise<Awaited<ReturnType<C[K]>>> {
    return this.#call(command, arg, timeoutMs) as Promise<Awaited<ReturnType<C[K]>>>
  }

  /** The child's CPU time so far. */
  cpuUsage(): Promise<CpuUsage> {
    return this.#call('cpuUsage', undefined, 10_000) as Promise<CpuUsage>
  }
  /** Starts the child's CPU profiler. */
  async profileStart(): Promise<void> {
    await this.#call('profileStart', undefined, 10_000)
  }
  /** Stops the child's CPU profiler and has it write the profile to `file`. */
  async profileStop(file: string): Promise<void> {
    await this.#call('profileStop', { file }, 30_000)
  }
  /** The child's memory after a full collection. */
  memory(): Promise<MemorySample> {
    return this.#call('memory', undefined, 30_000) as Promise<MemorySample>
  }

  #call(command: string, arg: unknown, timeoutMs: number): Promise<unknown> {
    if (this.#exit) return Promise.reject(new Error(this.#exit))
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id)
        reject(new Error(`${this.name}.${command} did not answer within ${timeoutMs} ms`))
      }, timeoutMs)
      this.#calls.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value)
        },
        reject: (err) => {
          clearTimeout(timer)
          reject(err)
        },
      })
      this.process.send({ id, command, arg } satisfies Call)
    })
  }

  /** Asks the child to exit (it closes what it opened), and kills it if it has not within 5 s. */
  async stop(): Promise<void> {
    if (this.#exit) return
    const exited = new Promise((resolve) => this.process.once('exit', resolve))
    try {
      this.process.send({ id: 0, command: 'exit', arg: undefined } satisfies Call)
    } catch {
      // The channel is already closed.
    }
    await Promise.race([exited, sleep(5000)])
    if (!this.#exit) this.process.kill('SIGKILL')
  }
}

/** Stops every handle given (those that started), together. */
export async function stopAll(handles: Array<{ stop(): Promise<void> } | undefined>): Promise<void> {
  await Promise.all(handles.map((handle) => handle?.stop()))
}

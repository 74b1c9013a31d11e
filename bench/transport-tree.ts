/**
 * Where a transport's bench children run from (bench/transports.ts). The working tree's run from
 * bench/ itself. A git commit's packages are materialized once into bench/.transports/<name>/
 * (git-ignored; `git archive | tar -x`, so .git gains no worktree), their dependencies installed
 * with that commit's own lockfile from the local pnpm store (`--offline`: no network is needed or
 * used), and reused while the marker file in it names the same commit. Before every run the working
 * tree's bench/*.ts are copied into <tree>/bench/: the children are this bench's code, and their
 * `@cogpay/*` imports resolve to that commit's workspace packages (through <tree>/node_modules).
 *
 * Setting up is bounded (BENCH_SETUP_TIMEOUT_MS, default 10 minutes for the whole of it) and says
 * what it does on stderr; any failure throws, and bench/run.ts reports the transport as failed.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join, resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fromSource } from './child-handle.ts'
import { TRANSPORTS, type TransportName } from './transports.ts'

/** The code one transport's children run. */
export interface TransportTree {
  /** The tree's root: its packages/, node_modules/, and the children's working directory. */
  root: string
  /** The directory holding the bench files the children are forked from. */
  benchDir: string
  /** What the packages are, in words: the commit or the working tree, and @cogpay/ilp's STREAM dependency. */
  source: string
}

const benchDir = fileURLToPath(new URL('.', import.meta.url))
const repoRoot = resolvePath(fileURLToPath(new URL('..', import.meta.url)))
const treesDir = join(benchDir, '.transports')
/** Written last, once a tree is extracted and installed: a tree without it (or at another commit) is made again. */
const MARKER = '.bench-tree.json'
const setupMs = Number(process.env.BENCH_SETUP_TIMEOUT_MS) > 0 ? Number(process.env.BENCH_SETUP_TIMEOUT_MS) : 600_000

type Log = (message: string) => void

/** Makes (or reuses) the tree of `transport` and copies this bench's files into it. */
export async function prepareTree(transport: TransportName, log: Log): Promise<TransportTree> {
  const source = TRANSPORTS[transport]
  if (source.kind === 'working-tree') {
    const head = (await output('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'], 10_000).catch(() => 'unknown')).trim()
    const changed = (await output('git', ['-C', repoRoot, 'status', '--porcelain', '--', 'packages'], 10_000).catch(() => ''))
      .split('\n')
      .filter(Boolean).length
    const runs = await buildPackages(repoRoot, transport, log, setupMs)
    return {
      root: repoRoot,
      benchDir,
      source: `working tree (HEAD ${head}${changed ? `, ${changed} files changed under packages/` : ''}); ${streamDependency(repoRoot)}; ${runs}`,
    }
  }

  const deadline = Date.now() + setupMs
  const left = () => {
    const ms = deadline - Date.now()
    if (ms <= 0) throw new Error(`setting up ${transport} took longer than ${setupMs} ms (BENCH_SETUP_TIMEOUT_MS)`)
    return ms
  }
  const root = join(treesDir, transport)
  // `rev-parse --verify --quiet` exits 1, saying nothing, for a ref that is not there.
  const commit = (
    await output('git', ['-C', repoRoot, 'rev-parse', '--verify', '--quiet', `${source.ref}^{commit}`], left()).catch((err: CommandError) => {
      if (err.exitCode === 1) return ''
      throw err
    })
  ).trim()
  if (!commit) throw new Error(`git ref ${source.ref} is not in this clone (a shallow clone? fetch it, or drop ${transport} from BENCH_TRANSPORTS)`)
  const oneline = (await output('git', ['-C', repoRoot, 'log', '-1', '--format=%h %s', commit], left())).trim()
  const subject = oneline.length > 60 ? `${oneline.slice(0, 59)}…` : oneline

  if (markerCommit(root) === commit) {
    log(`${transport}: reusing ${root} (packages at ${commit.slice(0, 10)})`)
  } else {
    const started = Date.now()
    log(`${transport}: materializing the packages at ${commit.slice(0, 10)} into ${root} (once; reused while it stays at that commit)`)
    rmSync(root, { recursive: true, force: true })
    mkdirSync(root, { recursive: true })
    log(`${transport}:   git archive ${commit.slice(0, 10)} | tar -x -C ${root}`)
    await extract(commit, root, left())
    log(`${transport}:   bash scripts/pnpm.sh install --offline --frozen-lockfile (in ${root}; from the local pnpm store, no network)`)
    await run('bash', ['scripts/pnpm.sh', 'install', '--offline', '--frozen-lockfile', '--reporter=append-only'], {
      cwd: root,
      timeoutMs: left(),
      env: { CI: 'true' },
      // pnpm's summary and any complaint; the full output's end is in the error if it fails.
      log: (line) => {
        if (/^(Lockfile|Packages:|Done in)|ERR|WARN/.test(line)) log(`${transport}:     ${line}`)
      },
    })
    writeFileSync(join(root, MARKER), `${JSON.stringify({ transport, ref: source.ref, commit, installedAt: new Date().toISOString() }, null, 2)}\n`)
    log(`${transport}:   set up in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }

  const runs = await buildPackages(root, transport, log, left())
  const treeBench = join(root, 'bench')
  rmSync(treeBench, { recursive: true, force: true })
  mkdirSync(treeBench)
  const files = readdirSync(benchDir).filter((file) => file.endsWith('.ts'))
  for (const file of files) cpSync(join(benchDir, file), join(treeBench, file))
  log(`${transport}: copied this bench's ${files.length} .ts files into ${treeBench}`)
  checkImports(treeBench, root, commit)
  return { root, benchDir: treeBench, source: `git ${subject}; ${streamDependency(root)}; ${runs}` }
}

/**
 * Builds the tree's packages with its own tsc (`tsc -b packages/<each>`: incremental, so a few
 * seconds when nothing changed), for the children to run from dist/ as npm users do
 * (bench/dist-hooks.mjs); nothing with BENCH_FROM_SOURCE=1. Says which, for the report.
 */
async function buildPackages(root: string, transport: TransportName, log: Log, timeoutMs: number): Promise<string> {
  if (fromSource) return 'packages run from src/ through tsx (BENCH_FROM_SOURCE=1)'
  const packages = readdirSync(join(root, 'packages')).filter((name) => existsSync(join(root, 'packages', name, 'tsconfig.json')))
  log(`${transport}: tsc -b ${packages.length} packages in ${root} (the children run their dist/)`)
  await run(join(root, 'node_modules', '.bin', 'tsc'), ['-b', ...packages.map((name) => join('packages', name))], { cwd: root, timeoutMs })
  return 'packages run from dist/ (tsc -b)'
}

function markerCommit(root: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(join(root, MARKER), 'utf8')) as { commit?: string }).commit
  } catch {
    return undefined
  }
}

/**
 * Every package the bench files import must be installed in the tree itself: Node would otherwise
 * find it further up, in the working tree's node_modules, and measure the wrong code in silence.
 */
function checkImports(treeBench: string, root: string, commit: string): void {
  const builtins = new Set(builtinModules)
  const missing = new Set<string>()
  for (const file of readdirSync(treeBench)) {
    const text = readFileSync(join(treeBench, file), 'utf8')
    for (const [, specifier] of text.matchAll(/\bfrom\s+'([^'.][^']*)'/g)) {
      if (specifier!.startsWith('node:') || builtins.has(specifier!)) continue
      const parts = specifier!.split('/')
      const name = specifier!.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
      if (!existsSync(join(root, 'node_modules', name, 'package.json'))) missing.add(`${name} (${file})`)
    }
  }
  if (missing.size > 0) {
    throw new Error(`the bench imports packages that ${commit.slice(0, 10)}'s tree does not install: ${[...missing].join(', ')}; guard those imports`)
  }
}

/** Which STREAM @cogpay/ilp depends on in `root`, with the installed version. */
function streamDependency(root: string): string {
  try {
    const ilp = join(root, 'packages', 'ilp')
    const { dependencies = {} } = JSON.parse(readFileSync(join(ilp, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
    const streams = ['ilp-protocol-stream', '@cogpay/stream'].filter((name) => name in dependencies)
    const described = streams.map((name) => {
      try {
        const installed = realpathSync(join(ilp, 'node_modules', name))
        const { version } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { version: string }
        return `${name} ${version}`
      } catch {
        return `${name} ${dependencies[name]} (not installed)`
      }
    })
    return `@cogpay/ilp depends on ${described.length ? described.join(' and ') : 'neither ilp-protocol-stream nor @cogpay/stream'}`
  } catch (err) {
    return `@cogpay/ilp: ${(err as Error).message}`
  }
}

// ---------------------------------------------------------------------------------------------
// Commands, each bounded in time; a timeout kills the command's whole process group

/** Commands under way: each runs in a process group of its own, killed whole on a timeout or when the bench exits. */
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of running) killGroup(child)
})

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
  } catch {
    // Already gone.
  }
}

/** Spawns `command` in a process group of its own, tracked until it closes. */
function start(command: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true })
  running.add(child)
  child.on('close', () => running.delete(child))
  child.on('error', () => running.delete(child))
  return child
}

/** A command that failed: its exit code, when it exited. */
type CommandError = Error & { exitCode?: number }

/** Runs a command; resolves when it exits 0, rejects (with the end of its output) otherwise or at `timeoutMs`. */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; timeoutMs: number; env?: Record<string, string>; log?: Log },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = start(command, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let pending = ''
    const take = (chunk: Buffer) => {
      out += chunk.toString()
      if (!options.log) return
      pending += chunk.toString()
      const lines = pending.split('\n')
      pending = lines.pop()!
      for (const line of lines) if (line.trim()) options.log(line.trimEnd())
    }
    child.stdout!.on('data', take)
    child.stderr!.on('data', take)
    const timer = setTimeout(() => {
      killGroup(child)
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${options.timeoutMs} ms`))
    }, options.timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (pending.trim()) options.log?.(pending.trimEnd())
      if (code === 0) resolve(out)
      else {
        const tail = out.trim().split('\n').slice(-8).join(' | ')
        const err: CommandError = new Error(`${command} ${args.join(' ')} failed (code ${code}, signal ${signal})${tail ? `: ${tail}` : ''}`)
        if (code !== null) err.exitCode = code
        reject(err)
      }
    })
  })
}

const output = (command: string, args: string[], timeoutMs: number) => run(command, args, { timeoutMs })

/** `git archive <commit> | tar -x -C <dir>`, bounded by `timeoutMs`. */
function extract(commit: string, dir: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const git = start('git', ['-C', repoRoot, 'archive', '--format=tar', commit], { stdio: ['ignore', 'pipe', 'pipe'] })
    const tar = start('tar', ['-x', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] })
    git.stdout!.pipe(tar.stdin!)
    let errors = ''
    git.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()))
    tar.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()))
    const timer = setTimeout(() => {
      killGroup(git)
      killGroup(tar)
      reject(new Error(`git archive | tar -x did not finish within ${timeoutMs} ms`))
    }, timeoutMs)
    const exited = (child: ChildProcess) =>
      new Promise<number | null>((done) => {
        child.on('error', () => done(-1))
        child.on('close', (code) => done(code))
      })
    Promise.all([exited(git), exited(tar)]).then(([gitCode, tarCode]) => {
      clearTimeout(timer)
      if (gitCode === 0 && tarCode === 0) resolve()
      else reject(new Error(`git archive | tar -x failed (git ${gitCode}, tar ${tarCode}): ${errors.trim().slice(0, 500)}`))
    })
  })
}

import { execFile } from 'node:child_process'
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * What a user installs is what we test: every package is packed as it would be published, the
 * tarballs are installed with plain npm (not pnpm) into an empty folder outside the workspace,
 * together with express 5 and koa 3 from the registry, and used from plain JavaScript, from
 * TypeScript under NodeNext, and through the installed `cogpay` bin. publint and attw check the
 * same tarballs.
 */

const root = fileURLToPath(new URL('..', import.meta.url))
const fixtures = join(root, 'test', 'consumer')
const exec = promisify(execFile)
/** The publishable packages: every folder under packages/. */
const PACKAGES = ['cli', 'core', 'express', 'fetch', 'hosting', 'ilp', 'koa', 'stream', 'testnet']

let dir: string
let packs: string
let tarballs: string[]

/** Runs a command; on failure the error carries its output, so a red test says what went wrong. */
async function run(file: string, args: string[], options: { cwd: string; timeout?: number }) {
  try {
    return await exec(file, args, { cwd: options.cwd, timeout: options.timeout ?? 60_000, maxBuffer: 16 * 1024 * 1024 })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string }
    throw new Error(`${file} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`)
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cogpay-consumer-'))
  packs = join(dir, 'packs')
  await run('bash', ['scripts/pack.sh', packs], { cwd: root, timeout: 120_000 })
  tarballs = (await readdir(packs)).filter((name) => name.endsWith('.tgz')).map((name) => join(packs, name))
  const app = join(dir, 'app')
  await run('mkdir', ['-p', app], { cwd: dir })
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  for (const file of ['pay.mjs', 'oneshot.mjs', 'consumer.ts', 'tsconfig.json']) await copyFile(join(fixtures, file), join(app, file))
  // The same versions the workspace tests with, read from its manifest: one place to bump them.
  const dev = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> })
    .devDependencies
  const fromRegistry = ['express', 'koa', 'typescript', '@types/node', '@types/express', '@types/koa'].map(
    (name) => `${name}@${dev[name]}`,
  )
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...tarballs, ...fromRegistry], {
    cwd: app,
    timeout: 150_000,
  })
}, 240_000)

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('the packed tarballs', () => {
  it('are one per package, with no workspace: ranges, no tests and a LICENSE and README each', async () => {
    expect(tarballs.map((path) => path.split('/').at(-1)).sort()).toEqual(PACKAGES.map((name) => `cogpay-${name}-0.1.0.tgz`))
    const sizes: string[] = []
    for (const tarball of tarballs) {
      const { stdout: listing } = await run('tar', ['tzf', tarball], { cwd: dir })
      const files = listing.trim().split('\n')
      expect(files).toContain('package/LICENSE')
      expect(files).toContain('package/README.md')
      expect(files).toContain('package/dist/index.js'.replace('index', tarball.includes('-cli-') ? 'bin' : 'index'))
      expect(files.filter((file) => /(^|\/)test\/|\.test\.|tsbuildinfo/.test(file))).toEqual([])
      const { stdout: manifest } = await run('tar', ['xzOf', tarball, 'package/package.json'], { cwd: dir })
      expect(manifest).not.toContain('workspace:')
      const pkg = JSON.parse(manifest) as { exports: Record<string, { types: string; import: string }>; dependencies?: object }
      expect(pkg.exports['.']?.import).toMatch(/^\.\/dist\/.*\.js$/)
      expect(pkg.exports['.']?.types).toMatch(/^\.\/dist\/.*\.d\.ts$/)
      sizes.push(`${tarball.split('/').at(-1)} ${((await stat(tarball)).size / 1024).toFixed(1)} KiB, dependencies: ${Object.keys(pkg.dependencies ?? {}).join(', ')}`)
    }
    console.log(`tarballs:\n  ${sizes.join('\n  ')}`)
  })

  // A source file removed since an earlier build left its compiled output in dist/, and `files`
  // shipped it: @cogpay/ilp carried three old workarounds that patched ilp-protocol-stream.
  it('ship no compiled file whose source is gone (stale dist/ output of an earlier build)', async () => {
    for (const tarball of tarballs) {
      const files = (await run('tar', ['tzf', tarball], { cwd: dir })).stdout.trim().split('\n')
      const sources = new Set(files.filter((file) => file.startsWith('package/src/')).map((file) => file.slice('package/src/'.length).replace(/\.[cm]?[jt]sx?$/, '')))
      const orphans = files
        .filter((file) => file.startsWith('package/dist/'))
        .filter((file) => !sources.has(file.slice('package/dist/'.length).replace(/\.[cm]?js(\.map)?$|\.d\.[cm]?ts(\.map)?$/, '')))
      expect(orphans, tarball).toEqual([])
    }
  })

  it('publint reports nothing for any package', async () => {
    for (const tarball of tarballs) {
      const { stdout, stderr } = await run(join(root, 'node_modules/.bin/publint'), ['run', '--strict', tarball], { cwd: dir })
      expect(`${stdout}${stderr}`, tarball).toContain('All good!')
    }
  })

  it('@arethetypeswrong/cli reports nothing for any package (ESM only)', async () => {
    for (const tarball of tarballs) {
      // Exits non-zero on any problem (run() throws then); `esm-only` leaves out the CommonJS
      // resolutions (cogpay is ESM only, and says so), which it still lists as "(ignored)".
      const { stdout } = await run(join(root, 'node_modules/.bin/attw'), ['--profile', 'esm-only', '--format', 'ascii', tarball], {
        cwd: dir,
      })
      expect(stdout, tarball).toMatch(/node16 \(from ESM\): 🟢 \(ESM\)/)
      expect(stdout, tarball).toMatch(/bundler: 🟢/)
    }
  })
})

describe('a consumer that installed the tarballs with plain npm', () => {
  it('pays an Express paidRoute, a Koa paidRoute, a meteredRoute, cogpay fetch and a one-shot payFetch script from plain .mjs files, exact amounts on both sides', async () => {
    const { stdout } = await run('node', ['pay.mjs'], { cwd: join(dir, 'app') })
    expect(stdout).toContain('consumer: paid express 100, koa 40, metered 35, cogpay fetch 100, oneshot 100; server received 375')
  })

  it('type-checks a TypeScript consumer under module NodeNext against the installed declarations', async () => {
    // skipLibCheck is off so that cogpay's own declarations are checked; errors inside other
    // packages' declarations (an @types package out of step with its library) are theirs, not ours.
    const app = join(dir, 'app')
    const result = await exec(join(app, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: app }).then(
      (ok) => ok.stdout,
      (err: { stdout?: string }) => err.stdout ?? String(err),
    )
    const errors = result
      .split('\n')
      .filter((line) => /error TS\d+/.test(line))
      .filter((line) => !line.startsWith('node_modules/') || line.startsWith('node_modules/@cogpay/'))
    expect(errors).toEqual([])
  })

  it("runs every package README's quick start (each ```js block of the README in the tarball) with plain node", async () => {
    const app = join(dir, 'app')
    const ran: string[] = []
    for (const name of PACKAGES) {
      const readme = await readFile(join(app, 'node_modules/@cogpay', name, 'README.md'), 'utf8')
      expect(readme, name).toContain(`npm install`)
      expect(readme, name).toContain('docs/PROTOCOL.md')
      const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]!)
      for (const [index, code] of blocks.entries()) {
        const file = `readme-${name}-${index}.mjs`
        await writeFile(join(app, file), code)
        const { stdout } = await run('node', [file], { cwd: app, timeout: 30_000 })
        expect(stdout.trim(), file).not.toBe('')
        ran.push(file)
      }
    }
    // Every library package has at least one (the CLI's quick start is shell, run by the bin tests).
    expect([...new Set(ran.map((file) => file.split('-')[1]))].sort()).toEqual(PACKAGES.filter((name) => name !== 'cli'))
  })

  it('runs the installed cogpay bin with plain node: npx cogpay --help', async () => {
    // --no-install: the bin must come from the installed tarball, never from the registry.
    const { stdout } = await run('npx', ['--no-install', 'cogpay', '--help'], { cwd: join(dir, 'app') })
    expect(stdout).toMatch(/^usage:\n {2}cogpay hub/)
    expect(stdout).toContain('cogpay fetch <url> --max <amount>')
  })
})

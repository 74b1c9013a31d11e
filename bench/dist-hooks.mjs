/**
 * A module resolve hook for the bench children (registered by bench/use-dist.mjs): an import that
 * resolves to a workspace package's source, `packages/<name>/src/<path>.ts` (the workspace's
 * exports point there), runs that package's build output `packages/<name>/dist/<path>.js` instead,
 * when it exists. That is the code a user installs from npm (the published exports point at
 * dist/), compiled by tsc, rather than the source transformed on the fly by tsx, whose esbuild
 * transform wraps every function it creates in a naming call (keepNames): 4 % of the paid
 * server's CPU in a lease profile. bench/run.ts builds the packages before it forks a child.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const source = /^(file:\/\/.*\/packages\/[^/]+\/)src\/(.+)\.([cm]?)ts$/

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context)
  const match = source.exec(resolved.url)
  if (!match || resolved.url.includes('/node_modules/')) return resolved
  const dist = `${match[1]}dist/${match[2]}.${match[3]}js`
  if (!existsSync(fileURLToPath(dist))) return resolved
  return { ...resolved, url: dist, format: match[3] === 'c' ? 'commonjs' : 'module' }
}

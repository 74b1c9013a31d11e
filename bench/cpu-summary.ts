/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by package and by function.
 *
 *   BENCH_PROFILE=1 BENCH_PHASES=floor,warm,leases npm run bench
 *   node --import tsx bench/cpu-summary.ts bench/profiles/*.cpuprofile
 */
import { readFileSync } from 'node:fs'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

function bucket(url: string): string {
  if (!url) return '(native/V8)'
  const pnpm = /node_modules\/\.pnpm\/([^/]+)\//.exec(url)
  if (pnpm) return pnpm[1]!.replace(/@[^@]+$/, '').replace(/\+/g, '/')
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (nm) return nm[1]!
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`
  const own = /\/work\/main\/(packages\/[^/]+|examples\/[^/]+|bench)\//.exec(url)
  if (own) return own[1]!
  return url
}

for (const file of process.argv.slice(2)) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)))
  const total = profile.endTime - profile.startTime
  const byBucket = new Map<string, number>()
  const byFunction = new Map<string, number>()
  for (const [id, us] of self) {
    const node = byId.get(id)!
    const { functionName, url, lineNumber } = node.callFrame
    const b = functionName.startsWith('(') ? functionName : bucket(url)
    byBucket.set(b, (byBucket.get(b) ?? 0) + us)
    const f = `${functionName || '(anonymous)'}  ${bucket(url)}:${lineNumber + 1}`
    byFunction.set(f, (byFunction.get(f) ?? 0) + us)
  }
  // Attribute each sample to the nearest frame that belongs to a package (skipping Node internals
  // and natives), so that e.g. crypto or socket writes count against the library that asked.
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const owner = new Map<string, number>()
  for (const [id, us] of self) {
    let node: ProfileNode | undefined = byId.get(id)
    let name = node?.callFrame.functionName.startsWith('(') ? node.callFrame.functionName : ''
    while (!name && node) {
      const b = bucket(node.callFrame.url)
      if (b !== '(native/V8)' && !b.startsWith('node:')) name = b
      const up = parent.get(node.id)
      node = up === undefined ? undefined : byId.get(up)
    }
    name ||= '(node internals, no package caller)'
    owner.set(name, (owner.get(name) ?? 0) + us)
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms`
  console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n\nself time by package:`)
  for (const [b, us] of [...byBucket].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${b}`)
  console.log('\nself time attributed to the nearest package up the stack:')
  for (const [b, us] of [...owner].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${pct(us)}  ${b}`)
  console.log('\nself time by function (top 30):')
  for (const [f, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`  ${pct(us)}  ${f}`)
}

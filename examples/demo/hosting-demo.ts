import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileLeaseStore } from '@cogpay/core/node'
import { createLeaseHost, createPaymentServer, createPayer } from '@cogpay/ilp'
import { createPayFetch } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'
import { createHosting, type RunView } from '@cogpay/hosting'

const SCRIPT = `require('node:http').createServer((req, res) => res.end('hello from a paid process\\n')).listen(process.env.PORT)`

/**
 * The hosting demo: a Codius-style host bills scripts 20 units per second (5 every 250 ms) while
 * they run. A client authorizes the host once (at most 20 per second, 100 in all), deploys a tiny
 * web server, calls it through the host, and revokes: the host kills the script at once. A second
 * deploy with its own cap of 15 is killed when that is spent. Returns what moved.
 */
export async function runHostingDemo(
  print: (line: string) => void = console.log,
): Promise<{ first: bigint; capped: bigint; hostPaid: bigint; killed: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'cogpay-hosting-demo-'))
  const testnet = await startTestnet()
  const paymentServer = createPaymentServer({ uplink: testnet.uri('host') })
  let killed = 0
  const hosting = createHosting({
    host: createLeaseHost({ paymentServer, store: new FileLeaseStore(join(dir, 'leases.json')), graceMs: 1000 }),
    ratePerSecond: 20n,
    intervalMs: 250,
    runsDir: dir,
    observer: { onExit: () => killed++ },
  })
  /** Until a run's process has exited (the host killed it), for at most 5 s. */
  const exited = async (id: string) => {
    for (let i = 0; i < 250 && hosting.runs.get(id)?.exitCode === undefined; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  const server = createServer(hosting.app)
  const payer = createPayer({ uplink: testnet.uri('client') })
  try {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const host = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    print(`hosting API on ${host}: 20 units per second while a script runs, pulled every 250 ms`)

    // The client's side: one authorization for the host, then ordinary requests.
    payer.authorize(host, { total: 100n, rate: { amount: 20n, intervalMs: 1000 } })
    payer.on('leaseSpend', ({ lease, spent }) => print(`  lease ${lease.slice(0, 6)}…: paid ${spent}`))
    const payFetch = createPayFetch({ payer, maxSpend: 0n })

    const deployed = await payFetch(`${host}/run`, { method: 'POST', body: SCRIPT })
    const run = (await deployed.json()) as RunView
    print(`deployed run ${run.id.slice(0, 6)}… (pid ${run.pid})`)
    let answer: Response | undefined
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await fetch(`${host}/run/${run.id}/app/`).catch(() => undefined)
      if (answer?.status !== 200) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    print(`its app says: ${(await answer?.text())?.trim()}`)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    payer.revoke(host)
    await exited(run.id)
    const first = (await (await fetch(`${host}/run/${run.id}`)).json()) as RunView
    print(`revoked: the host stopped the run (${first.lease.code}) after ${first.lease.paid} paid; pid ${run.pid} killed`)
    const firstSpent = payer.spent

    payer.authorize(host, { total: 100n, rate: { amount: 20n, intervalMs: 1000 } })
    const second = (await (await payFetch(`${host}/run`, { method: 'POST', body: SCRIPT, leaseMax: 15n })).json()) as RunView
    await exited(second.id) // killed when its cap was spent
    const capped = payer.spent - firstSpent
    print(`a run capped at 15: killed when its cap was spent (${hosting.runs.get(second.id)?.lease.signal.reason.code}); paid ${capped}`)
    const hostPaid = [...hosting.runs.values()].reduce((sum, r) => sum + r.lease.paid, 0n)
    print(`moved: client paid ${payer.spent}, host received ${hostPaid} (XRP, scale 9)`)
    return { first: firstSpent, capped, hostPaid, killed }
  } finally {
    await hosting.close()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await payer.close()
    await paymentServer.close()
    await testnet.close()
    await rm(dir, { recursive: true, force: true })
  }
}

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { FileLeaseStore } from '@cogpay/core/node'
import { createHosting, type Hosting } from '@cogpay/hosting'
import { createLeaseHost, createPaymentServer } from '@cogpay/ilp'

/** A running host: its URL, the hosting API, and how to stop it. */
export interface RunningHost {
  readonly url: string
  readonly hosting: Hosting
  close(): Promise<void>
}

/**
 * A Codius-style host in a few lines: scripts POSTed to `/run` are billed `ratePerSecond` while
 * they run, over leases kept in `dir/leases.json`, so a restarted host resumes them.
 */
export async function startHost(options: { uplink: string; dir: string; port?: number; ratePerSecond?: bigint }): Promise<RunningHost> {
  const paymentServer = createPaymentServer({ uplink: options.uplink })
  const host = createLeaseHost({ paymentServer, store: new FileLeaseStore(join(options.dir, 'leases.json')) })
  const hosting = createHosting({ host, ratePerSecond: options.ratePerSecond ?? 10n, runsDir: join(options.dir, 'runs') })
  const server = createServer(hosting.app)
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve))
  await hosting.resume()
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    hosting,
    async close() {
      await hosting.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await paymentServer.close()
    },
  }
}

/**
 * The bench's hub, in a process of its own: the embedded ILP network (@cogpay/testnet:
 * ilp-connector + ilp-plugin-mini-accounts over BTP on loopback). It hands out BTP URIs, one
 * account each, to the other processes.
 */
import { startTestnet, type Testnet } from '@cogpay/testnet'
import { serve } from './serve.ts'

let testnet: Testnet | undefined
const running = (): Testnet => {
  if (!testnet) throw new Error('hub: not started')
  return testnet
}

const commands = serve(
  {
    async start(): Promise<{ childPrefix: string; port: number }> {
      testnet ??= await startTestnet()
      return { childPrefix: testnet.childPrefix, port: testnet.port }
    },
    /** `count` BTP URIs for new child accounts named `name…`. */
    uris(arg: { name: string; count: number }): string[] {
      return Array.from({ length: arg.count }, () => running().uri(arg.name))
    },
  },
  async () => {
    await testnet?.close()
  },
)

export type HubCommands = typeof commands

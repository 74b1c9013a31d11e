import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { SpendLimitError } from '@cogpay/core'
import { createPaymentServer, createPayer } from '@cogpay/ilp'
import { createPayFetch, getPayment } from '@cogpay/fetch'
import { startTestnet } from '@cogpay/testnet'
import { createApp } from '@cogpay/example-transcode'

const run = promisify(execFile)

/**
 * The transcode demo: a 3-second test video (made by ffmpeg), a metered transcode API charging
 * 1000 units per second of output, one client with enough budget and one without. Prints spend as
 * it happens. Returns what each client spent.
 */
export async function runTranscodeDemo(print: (line: string) => void = console.log): Promise<{ full: bigint; capped: bigint }> {
  const dir = await mkdtemp(join(tmpdir(), 'cogpay-demo-'))
  const testnet = await startTestnet()
  const receiver = createPaymentServer({ uplink: testnet.uri('transcoder') })
  const payer = createPayer({ uplink: testnet.uri('client') })
  const server = createServer(createApp({ receiver, pricePerSecond: 1000n }))
  try {
    const source = join(dir, 'source.mp4')
    await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=duration=3:size=320x240:rate=25', '-c:v', 'mpeg4', '-y', source])
    const video = new Uint8Array(await readFile(source))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/transcode`
    print(`transcode API on ${url}: 1000 units per second of output, ffmpeg paused while a charge is unpaid`)
    const progress = (label: string) => ({ onSpend: [({ spent }: { spent: bigint }) => print(`  ${label}: paid ${spent}`)] })

    const full = createPayFetch({ payer, maxSpend: 5000n, hooks: progress('budget 5000') })
    const response = await full(url, { method: 'POST', body: video })
    const bytes = (await response.arrayBuffer()).byteLength
    const fullSpent = getPayment(response)?.spent ?? 0n
    print(`budget 5000: ${response.status}, ${bytes} bytes of H.264 MP4, spent ${fullSpent}`)

    const before = payer.spent
    const capped = createPayFetch({ payer, maxSpend: 1000n, hooks: progress('budget 1000') })
    try {
      await capped(url, { method: 'POST', body: video })
    } catch (err) {
      if (!(err instanceof SpendLimitError)) throw err
      print(`budget 1000: stopped (${err.serverCode}); ffmpeg killed; spent ${err.spent}`)
    }
    return { full: fullSpent, capped: payer.spent - before }
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await payer.close()
    await receiver.close()
    await testnet.close()
    await rm(dir, { recursive: true, force: true })
  }
}

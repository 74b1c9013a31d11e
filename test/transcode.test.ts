import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp, type TranscodeObserver } from '@cogpay/example-transcode'
import { createPayFetch, getPayment, SpendLimitError, ErrorCodes } from '@cogpay/fetch'
import { listen, startNetwork, type Network } from './support/network.ts'

const run = promisify(execFile)

/** Duration and codec of a file, as ffprobe reads them. */
async function probe(file: string): Promise<{ duration: number; codec: string }> {
  const { stdout } = await run('ffprobe', [
    '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'format=duration:stream=codec_name', '-of', 'json', file,
  ])
  const info = JSON.parse(stdout) as { format: { duration: string }; streams: { codec_name: string }[] }
  return { duration: Number(info.format.duration), codec: info.streams[0]?.codec_name ?? '' }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('metered transcode API on real ffmpeg and the real testnet', () => {
  let net: Network
  let app: Awaited<ReturnType<typeof listen>>
  let dir: string
  let video: Buffer
  const events: { spawned: number[]; exits: { pid: number; at: number }[]; stops: { code: string; at: number }[] } = {
    spawned: [],
    exits: [],
    stops: [],
  }
  const observer: TranscodeObserver = {
    onSpawn: (pid) => events.spawned.push(pid),
    onExit: ({ pid, at }) => events.exits.push({ pid, at }),
    onStop: ({ code, at }) => events.stops.push({ code, at }),
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cogpay-transcode-test-'))
    // A 3-second test video made by ffmpeg itself: nothing is downloaded.
    const source = join(dir, 'source.mp4')
    await run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=duration=3:size=320x240:rate=25', '-c:v', 'mpeg4', '-y', source])
    video = await readFile(source)
    net = await startNetwork()
    app = await listen(createApp({ receiver: net.receiver, pricePerSecond: 1000n, observer }))
  })
  afterAll(async () => {
    await app.close()
    await net.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('a transcode within budget produces a playable H.264 file, paid per second of output', async () => {
    const payer = net.newPayer()
    const payFetch = createPayFetch({ payer, maxSpend: 5000n })
    const response = await payFetch(`${app.url}/transcode`, {
      method: 'POST',
      body: new Uint8Array(video),
      headers: { 'Content-Type': 'video/mp4' },
    })
    expect(response.status).toBe(200)
    const out = join(dir, 'out.mp4')
    await writeFile(out, Buffer.from(await response.arrayBuffer()))
    const { duration, codec } = await probe(out)
    expect(codec).toBe('h264')
    expect(duration).toBeGreaterThan(2.8)
    expect(duration).toBeLessThan(3.2)
    // 1000 units per second of output: about 3000, and exactly what the server says it received.
    const spent = getPayment(response)!.spent
    expect(spent).toBeGreaterThanOrEqual(2800n)
    expect(spent).toBeLessThanOrEqual(3200n)
    expect(spent).toBe(BigInt(response.headers.get('cogpay-paid') ?? -1))
    expect(payer.spent).toBe(spent)
  })

  it('a budget too small stops the transcode: ffmpeg is killed within 100 ms and is gone', async () => {
    const payer = net.newPayer()
    let capAt = 0
    payer.once('cap', () => {
      capAt = performance.now()
    })
    events.spawned.length = 0
    events.exits.length = 0
    events.stops.length = 0
    const payFetch = createPayFetch({ payer, maxSpend: 1000n })
    const error = await payFetch(`${app.url}/transcode`, {
      method: 'POST',
      body: new Uint8Array(video),
      headers: { 'Content-Type': 'video/mp4' },
    }).catch((err: unknown) => err)
    expect(error).toBeInstanceOf(SpendLimitError)
    expect((error as SpendLimitError).serverCode).toBe(ErrorCodes.CAP_TOO_LOW)
    expect(payer.spent).toBeLessThanOrEqual(1000n)
    expect(events.stops[0]?.code).toBe(ErrorCodes.CAP_TOO_LOW)
    const pid = events.spawned[0]!
    const exit = events.exits.find((e) => e.pid === pid)
    expect(capAt).toBeGreaterThan(0)
    expect(exit).toBeDefined()
    expect(exit!.at - capAt).toBeLessThan(100)
    expect(isRunning(pid)).toBe(false)
  })
})

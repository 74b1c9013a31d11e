import { spawn } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import express, { type Express } from 'express'
import { meteredRoute, type Meter } from '@cogpay/express'
import type { AmountLike, CogpayError, PaymentReceiver } from '@cogpay/core'

/** What the transcoder reports, for logs and tests. */
export interface TranscodeObserver {
  /** ffmpeg started with this process id. */
  onSpawn?(pid: number): void
  /** ffmpeg exited; `at` is `performance.now()`. */
  onExit?(state: { pid: number; at: number; signal: NodeJS.Signals | null; code: number | null }): void
  /** The meter stopped; `at` is `performance.now()`. */
  onStop?(state: { code: string; at: number; charged: bigint; paid: bigint }): void
}

/** Options of the transcode API. */
export interface TranscodeOptions {
  receiver?: PaymentReceiver
  /** Price per second of output video, in the server's units. Default `1000n`. */
  pricePerSecond?: bigint
  /** Prepay window for the meter (see `meteredRoute`). Default `0n`: ffmpeg waits for each payment. */
  ahead?: AmountLike
  /** Transcode at the input's own frame rate (`-re`), as a live service would. Default `true`. */
  realtime?: boolean
  /** Largest upload accepted, in bytes. Default 64 MiB. */
  maxUploadBytes?: number
  observer?: TranscodeObserver
}

/**
 * A metered video transcode API on real ffmpeg. `POST /transcode` with the video as the request
 * body returns it as H.264 MP4, charged per second of output as ffmpeg reports its progress
 * (`-progress`). While a charge is unpaid, ffmpeg is paused (SIGSTOP), so at most one progress step
 * of work is ever done unpaid; when the payer stops paying, ffmpeg is killed at once and the
 * client gets a 402 saying why: it is never charged for output it does not get.
 */
export function createApp(options: TranscodeOptions = {}): Express {
  const pricePerSecond = options.pricePerSecond ?? 1000n
  const maxUploadBytes = options.maxUploadBytes ?? 64 * 1024 * 1024
  const observer = options.observer ?? {}
  const app = express()

  app.post(
    '/transcode',
    meteredRoute({
      ...(options.receiver ? { receiver: options.receiver } : {}),
      ...(options.ahead === undefined ? {} : { ahead: options.ahead }),
    }),
    async (req, res, next) => {
      const meter: Meter = res.locals.meter
      const dir = await mkdtemp(join(tmpdir(), 'cogpay-transcode-'))
      try {
        const input = join(dir, 'input')
        const output = join(dir, 'output.mp4')
        const declared = Number(req.headers['content-length'] ?? 0)
        if (declared > maxUploadBytes) {
          res.status(413).json({ error: { code: 'UPLOAD_TOO_LARGE', message: `the limit is ${maxUploadBytes} bytes` } })
          return
        }
        await pipeline(req, limitBytes(maxUploadBytes), createWriteStream(input))
        const result = await transcode(meter, input, output, { pricePerSecond, realtime: options.realtime ?? true, observer })
        if (!result.ok) {
          const reason = meter.signal.reason as CogpayError
          res.status(402).set('Cogpay-Error', reason.code).json({
            error: reason.toJSON().error,
            secondsTranscoded: result.seconds,
            charged: meter.charged.toString(),
            paid: meter.paid.toString(),
          })
          return
        }
        res.type('video/mp4').set('Content-Length', String((await stat(output)).size))
        await pipeline(createReadStream(output), res)
      } catch (err) {
        next(err)
      } finally {
        await rm(dir, { recursive: true, force: true })
      }
    },
  )
  return app
}

/**
 * Runs ffmpeg, charging for each second of output as it is reported. Resolves `ok: false` when
 * the meter stopped (ffmpeg is killed then) or ffmpeg failed.
 */
async function transcode(
  meter: Meter,
  input: string,
  output: string,
  options: { pricePerSecond: bigint; realtime: boolean; observer: TranscodeObserver },
): Promise<{ ok: boolean; seconds: number }> {
  const { pricePerSecond, observer } = options
  const args = ['-hide_banner', '-loglevel', 'error', '-nostdin', ...(options.realtime ? ['-re'] : [])]
  args.push('-i', input, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac')
  args.push('-progress', 'pipe:1', '-stats_period', '0.1', '-y', output)
  const ffmpeg = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  const pid = ffmpeg.pid ?? -1
  observer.onSpawn?.(pid)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    ffmpeg.once('exit', (code, signal) => {
      observer.onExit?.({ pid, at: performance.now(), code, signal })
      resolve({ code, signal })
    })
  })
  let stderr = ''
  ffmpeg.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk).slice(-2000)))

  // The payer stopped: kill ffmpeg now (SIGKILL also ends a paused process).
  const onStop = () => {
    const reason = meter.signal.reason as { code?: string }
    observer.onStop?.({ code: reason?.code ?? 'unknown', at: performance.now(), charged: meter.charged, paid: meter.paid })
    ffmpeg.kill('SIGKILL')
  }
  if (meter.signal.aborted) onStop()
  else meter.signal.addEventListener('abort', onStop, { once: true })

  let outputMicros = 0n
  let charging = Promise.resolve()
  let buffered = ''
  ffmpeg.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
      const line = buffered.slice(0, newline).trim()
      buffered = buffered.slice(newline + 1)
      const match = /^out_time_us=(\d+)$/.exec(line)
      if (!match) continue
      outputMicros = BigInt(match[1] ?? '0')
      const due = (outputMicros * pricePerSecond) / 1_000_000n
      charging = charging.then(() => chargeUpTo(meter, due, ffmpeg))
    }
  })

  const { code } = await exited
  meter.signal.removeEventListener('abort', onStop)
  await charging
  if (meter.signal.aborted) return { ok: false, seconds: Number(outputMicros) / 1e6 }
  if (code !== 0) throw new Error(`ffmpeg failed (exit ${code}): ${stderr.trim()}`)
  // Whatever the last progress line did not cover (rounding), charged before the result is served.
  const final = (outputMicros * pricePerSecond + 999_999n) / 1_000_000n
  await chargeUpTo(meter, final, undefined)
  return { ok: !meter.signal.aborted, seconds: Number(outputMicros) / 1e6 }
}

/** Charges up to `due` in total; pauses ffmpeg while the charge is unpaid. */
async function chargeUpTo(meter: Meter, due: bigint, ffmpeg: ReturnType<typeof spawn> | undefined): Promise<void> {
  const amount = due - meter.charged
  if (amount <= 0n || meter.signal.aborted) return
  let paid = false
  const charge = meter.charge(amount).then(
    () => {
      paid = true
    },
    () => {},
  )
  await Promise.resolve()
  const paused = !paid && ffmpeg && ffmpeg.exitCode === null && ffmpeg.kill('SIGSTOP')
  await charge
  if (paused && ffmpeg.exitCode === null && !meter.signal.aborted) ffmpeg.kill('SIGCONT')
}

/** A transform that fails once more than `limit` bytes pass. */
function limitBytes(limit: number) {
  let seen = 0
  return async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) {
      seen += chunk.length
      if (seen > limit) throw new Error(`upload larger than ${limit} bytes`)
      yield chunk
    }
  }
}

import { runDemo } from './demo.ts'
import { runTranscodeDemo } from './transcode-demo.ts'

// `npm run demo` runs the paid API demo; `npm run demo -- transcode` the metered transcode demo.
const which = process.argv[2] ?? 'api'
if (which === 'transcode') await runTranscodeDemo()
else if (which === 'api') await runDemo()
else {
  console.error(`unknown demo ${JSON.stringify(which)}: use "api" (default) or "transcode"`)
  process.exitCode = 2
}

import { runDemo } from './demo.ts'
import { runTranscodeDemo } from './transcode-demo.ts'
import { runHostingDemo } from './hosting-demo.ts'

// `npm run demo` runs the paid API demo; `npm run demo -- transcode` the metered transcode demo;
// `npm run demo -- hosting` the hosting demo (leases: pull payments while a process runs).
const which = process.argv[2] ?? 'api'
if (which === 'transcode') await runTranscodeDemo()
else if (which === 'hosting') await runHostingDemo()
else if (which === 'api') await runDemo()
else {
  console.error(`unknown demo ${JSON.stringify(which)}: use "api" (default), "transcode" or "hosting"`)
  process.exitCode = 2
}

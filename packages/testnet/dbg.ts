import { startTestnet } from './src/index.ts'
const net = await startTestnet({ log: process.stdout })
console.log(net.port)
await net.close()

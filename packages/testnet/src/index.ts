export { startTestnet, type Testnet, type TestnetOptions } from './hub.js'

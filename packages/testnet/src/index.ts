export { startTestnet, type Testnet, type TestnetOptions, type SecondAssetOptions } from './hub.js'
export {
  faultyPlugin,
  type FaultyPlugin,
  type FaultyPluginOptions,
  type Faults,
  type FaultRate,
  type FaultDirection,
  type FaultControl,
  type FaultStats,
  type PluginLike,
} from './faulty-plugin.js'

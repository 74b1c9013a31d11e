export { createHosting, type Hosting, type HostingOptions, type HostingObserver } from './hosting.js'
export type { Run, RunView } from './runs.js'

// The Node-only parts of @cogpay/core, imported as `@cogpay/core/node`: the file lease store and
// the helpers that watch a node:http response (what the Express and Koa adapters use).
export { FileLeaseStore } from './file-lease-store.js'
export { beforeHeaders } from './before-headers.js'
export { clientGone } from './client-gone.js'
export { captureResponse, whenResponseDone } from './capture-response.js'

'use strict'
// ilp-connector takes its rate backend only as a module name or path: it require()s the module
// and calls `new Backend(backendConfig, services)`. This module is that path. It hands back the
// ExchangeRates object the testnet built and passed as `backendConfig.rates` (`new` returns the
// object a constructor returns), so the testnet keeps a handle to change the rate while it runs.
module.exports = function TestnetRateBackend(options) {
  if (!options || !options.rates) throw new TypeError('testnet: backendConfig.rates is missing')
  return options.rates
}

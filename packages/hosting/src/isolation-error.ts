import type { IsolationReport } from './isolation.js'

/**
 * Thrown by `createHosting({ isolation: 'strict' })` when a mechanism is missing or only a
 * fallback here: the host does not start. `report` says what was found; `code` is stable.
 */
export class HostingIsolationError extends Error {
  override name = 'HostingIsolationError'
  readonly code = 'HOSTING_ISOLATION_UNAVAILABLE'
  readonly report: IsolationReport

  constructor(report: IsolationReport) {
    super(
      `strict isolation is not available here: ${report.weak
        .map((name) => `${name} (${report.mechanisms[name].level}: ${report.mechanisms[name].how})`)
        .join('; ')}. Run the host as root on Linux with cgroups, unshare and setpriv, or pass isolation: 'best-effort'`,
    )
    this.report = report
  }
}

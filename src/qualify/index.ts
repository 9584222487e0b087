// Public entry of token qualification (`hsm-vault qualify`).
export { qualify, ALL_CHECKS, type QualifyRunOptions, type QualifyEvents } from './qualify.js';
export { exitCodeOf, verdictOf } from './runner.js';
export { writeReports, markdownReport, htmlReport, type ReportOptions, type ReportPaths } from './report.js';
export { profileOf, profileNameOf } from './profile.js';
export { progressReporter } from './progress.js';
export { unavailableProtocolLeg, PROTOCOL_UNAVAILABLE } from './checks/protocol.js';
export type * from './types.js';

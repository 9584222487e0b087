// The HTTP node of a vault (DESIGN.md "HTTP API of a vault node").
export { createServer, errorResponse, DEFAULT_BODY_LIMIT_BYTES } from './server.js';
export type { JwtOptions, LoggerOptions, ServerOptions } from './server.js';
export { ALGORITHMS, JwtKeyError, loadJwtKeys, verifyToken, bearerToken, authorize } from './auth.js';
export type { Algorithm, Scope, TokenPolicy, VerificationKey, VerifiedToken } from './auth.js';
export { DEFAULT_RATE_LIMITS, TokenBuckets } from './rate-limit.js';
export type { BucketLimit, RateLimitOptions, Take } from './rate-limit.js';
export { ServerMetrics, timed } from './metrics.js';
export type { RecoveryOutcome, RegistrationOutcome } from './metrics.js';
export { HttpError } from './http-errors.js';
export { FIELD_BYTES, MAX_ATTEMPTS, binaryField, encodedLength } from './schemas.js';

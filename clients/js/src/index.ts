// storage-broker's client for browsers and Node >= 20 (no runtime dependencies).
export { createClient } from "./client.js";
export type {
  ClientOptions,
  StorageBrokerClient,
  DownloadOptions,
  UploadParameters,
  Me,
  Bucket,
  ObjectPage,
  ObjectInfo,
  SignRequest,
  SignResponse,
  BatchResult,
  ManifestLine,
  UploadPolicy,
  Project,
  Member,
  Grant,
  NewGrant,
  NewBucket,
  AuditPage,
  AuditEvent,
  AuditFilters,
} from "./client.js";
export type { Flow, Protocol, UploadOptions, UploadProgress, UploadResult } from "./upload.js";
export { StorageBrokerError, StorageCodes } from "./errors.js";
export type { ErrorSource, Problem } from "./errors.js";
export type { components, paths } from "./openapi.js";

// storage-broker's client for browsers and Node >= 20 (no runtime dependencies).
export { createClient } from "./client.js";
export { StorageBrokerError, StorageCodes } from "./errors.js";

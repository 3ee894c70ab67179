// The client: the broker's API as typed calls, and uploads and downloads through the URLs it signs.

import type { components } from "./openapi.js";
import { StorageBrokerError, brokerError, networkError, storageError } from "./errors.js";
import { type Transport, sendRetrying, transport } from "./transport.js";
import {
  DEFAULT_CHUNK,
  Progress,
  type Protocol,
  type UploadContext,
  type UploadOptions,
  type UploadResult,
  blocks,
  form,
  multipart,
  resumable,
  signPut,
  single,
} from "./upload.js";

type Schemas = components["schemas"];
export type Me = Schemas["Me"];
export type Bucket = Schemas["BucketView"];
export type ObjectPage = Schemas["ObjectList"];
export type ObjectInfo = Schemas["ObjectView"];
export type SignRequest = Schemas["SignRequest"];
export type SignResponse = Schemas["SignResponse"];
export type BatchResult = Schemas["BatchResult"];
export type ManifestLine = Schemas["ManifestLine"];
export type UploadPolicy = Schemas["UploadPolicyResponse"];
export type Project = Schemas["ProjectView"];
export type Member = Schemas["MemberView"];
export type Grant = Schemas["GrantView"];
export type NewGrant = Schemas["NewGrantBody"];
export type NewBucket = Schemas["NewBucketBody"];
export type AuditPage = Schemas["AuditPage"];
export type AuditEvent = Schemas["AuditView"];

/** Filters of an audit read; every one optional. */
export interface AuditFilters {
  subject?: string;
  object_prefix?: string;
  decision?: "allow" | "deny" | "not_found";
  /** RFC 3339. */
  since?: string;
  until?: string;
  limit?: number;
}

export interface ClientOptions {
  /** The broker, e.g. `https://broker.example.org` (same origin behind a gatekeeper: `""`). */
  baseUrl: string;
  /** A bearer token, or */
  token?: string;
  /** a function that gives the current one (called before every broker call; refresh there). */
  getToken?: () => string | Promise<string>;
  /** fetch to use (default: the global one). Given, it carries every request, uploads too. */
  fetch?: typeof fetch;
  /** Retries after a network error, 408, 429 or 5xx (default 4), with backoff. */
  retries?: number;
}

export interface DownloadOptions {
  signal?: AbortSignal;
  /** Bytes `[start, end)` only (an HTTP Range request). */
  range?: { start: number; end?: number };
  onProgress?: (progress: { loaded: number; total: number | undefined }) => void;
  responseContentType?: string;
  responseContentDisposition?: string;
}

/** What Uppy's `@uppy/aws-s3` (and other direct-upload widgets) ask `getUploadParameters` for. */
export interface UploadParameters {
  method: "PUT" | "POST";
  url: string;
  fields: Record<string, string>;
  headers: Record<string, string>;
}

export interface StorageBrokerClient {
  me(options?: { signal?: AbortSignal }): Promise<Me>;
  buckets(options?: { signal?: AbortSignal }): Promise<Bucket[]>;
  /** Pages of the objects under `prefix` the caller may read, following the page tokens. */
  list(bucket: string, options?: { prefix?: string; signal?: AbortSignal }): AsyncIterable<ObjectPage>;
  sign(request: SignRequest, options?: { signal?: AbortSignal }): Promise<SignResponse>;
  /** Up to 10,000 signatures, streamed back as NDJSON and yielded as they come (in order). */
  batch(items: SignRequest[], options?: { expiresIn?: number; signal?: AbortSignal }): AsyncIterable<BatchResult>;
  /** A signed GET for every object under `prefix` the caller may read, streamed. */
  manifest(bucket: string, prefix: string, options?: { expiresIn?: number; signal?: AbortSignal }): AsyncIterable<ManifestLine>;
  upload(bucket: string, object: string, data: Blob | ArrayBuffer | ArrayBufferView | string, options?: UploadOptions): Promise<UploadResult>;
  download(bucket: string, object: string, options?: DownloadOptions): Promise<Blob>;
  /** Fetches a URL the broker signed (a sign answer, a batch result, a manifest line); storage's errors typed. */
  fetchSigned(signed: { url: string; headers?: Record<string, string>; expires_at?: string }, options?: DownloadOptions): Promise<Response>;
  delete(bucket: string, object: string, options?: { signal?: AbortSignal }): Promise<void>;
  uploadPolicy(request: Schemas["UploadPolicyRequest"], options?: { signal?: AbortSignal }): Promise<UploadPolicy>;
  /** One page of a listing: `pageToken` from the previous page's `next_page_token`. */
  listPage(bucket: string, options?: { prefix?: string; pageToken?: string | null; signal?: AbortSignal }): Promise<ObjectPage>;
  bucket(name: string, options?: { signal?: AbortSignal }): Promise<Bucket>;
  createBucket(request: NewBucket, options?: { signal?: AbortSignal }): Promise<Bucket>;
  deleteBucket(name: string, options?: { signal?: AbortSignal }): Promise<void>;
  projects(options?: { signal?: AbortSignal }): Promise<Project[]>;
  project(slug: string, options?: { signal?: AbortSignal }): Promise<Project>;
  createProject(request: { slug: string; name: string }, options?: { signal?: AbortSignal }): Promise<Project>;
  /** Adds or changes a member: `member` is a user's `sub` or `group:<path>`. */
  setMember(slug: string, member: string, role: string, options?: { signal?: AbortSignal }): Promise<Member>;
  removeMember(slug: string, member: string, options?: { signal?: AbortSignal }): Promise<void>;
  grants(bucket: string, options?: { signal?: AbortSignal }): Promise<Grant[]>;
  grant(bucket: string, grant: NewGrant, options?: { signal?: AbortSignal }): Promise<Grant>;
  revokeGrant(bucket: string, id: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** One page of a bucket's audit (`bucket`: its admins), or of every bucket's (`null`: storage admins), newest first. */
  auditPage(bucket: string | null, filters?: AuditFilters & { pageToken?: string | null; bucket?: string; signal?: AbortSignal }): Promise<AuditPage>;
  /** Uppy's `getUploadParameters`: a signed PUT (or, with `form`, a policy POST) for one file. */
  uploadParameters(
    bucket: string,
    object: string,
    file: { type?: string; size?: number },
    options?: { form?: boolean; metadata?: Record<string, string>; expiresIn?: number; signal?: AbortSignal },
  ): Promise<UploadParameters>;
}

const JSON_HEADERS = { "Content-Type": "application/json" };

export function createClient(options: ClientOptions): StorageBrokerClient {
  const base = options.baseUrl.replace(/\/+$/, "");
  const t: Transport = transport(options);
  // Protocols seen per bucket: a chunked upload to a bucket known to be on GCS or S3 needs no probe.
  const protocols = new Map<string, Protocol>();

  /** The bearer token; none when neither is given (behind a gatekeeper, which adds it). */
  async function token(): Promise<string | undefined> {
    return (options.getToken ? await options.getToken() : options.token) || undefined;
  }

  /** A broker call. `idempotent` calls are retried on network errors and 5xx; others are sent once. */
  async function answer(method: string, path: string, body: unknown, signal: AbortSignal | undefined, accept = "application/json", idempotent = true): Promise<Response> {
    const bearer = await token();
    const headers: Record<string, string> = { Accept: accept, ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) };
    if (body !== undefined) Object.assign(headers, JSON_HEADERS);
    const once = { ...t, retries: idempotent ? t.retries : 0 };
    let response: Response | undefined;
    // Through the retrying transport (fetch), keeping the Response for streamed bodies.
    await sendRetrying(
      { ...once, xhr: false, fetch: async (url, init) => (response = await t.fetch(url, init)) },
      { method, url: base + path, headers, body: body === undefined ? null : JSON.stringify(body), signal },
      "the broker",
    );
    if (!response) throw networkError("the broker", new Error("no answer"));
    if (!response.ok) throw brokerError(response.status, await response.text());
    return response;
  }
  const json = async <T>(method: string, path: string, body: unknown, signal?: AbortSignal, idempotent = true): Promise<T> =>
    (await (await answer(method, path, body, signal, "application/json", idempotent)).json()) as T;
  const call = <T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> => json<T>("POST", path, body, signal);
  const remember = <T extends { protocol?: string }>(bucket: string, signed: T): T => {
    if (signed.protocol) protocols.set(bucket, signed.protocol as Protocol);
    return signed;
  };

  const path = encodeURIComponent;
  const nothing = async (method: string, route: string, signal?: AbortSignal) => {
    await answer(method, route, undefined, signal, "application/json", method !== "POST");
  };

  const client: StorageBrokerClient = {
    me: (o) => json<Me>("GET", "/v1/me", undefined, o?.signal),
    buckets: async (o) => (await json<Schemas["BucketList"]>("GET", "/v1/buckets", undefined, o?.signal)).buckets,

    async *list(bucket, o) {
      let pageToken: string | null | undefined;
      do {
        const query = new URLSearchParams();
        if (o?.prefix) query.set("prefix", o.prefix);
        if (pageToken) query.set("page_token", pageToken);
        const page = await json<ObjectPage>("GET", `/v1/buckets/${encodeURIComponent(bucket)}/objects?${query}`, undefined, o?.signal);
        yield page;
        pageToken = page.next_page_token;
      } while (pageToken);
    },

    sign: async (request, o) => remember(request.bucket, await call<SignResponse>("/v1/sign", request, o?.signal)),

    async *batch(items, o) {
      const response = await answer("POST", "/v1/sign/batch", { items, expires_in: o?.expiresIn }, o?.signal, "application/x-ndjson");
      for await (const line of ndjson<BatchResult | { error: { code: string; message: string } }>(response)) {
        if (!("index" in line)) throw streamError(line.error);
        yield line;
      }
    },

    async *manifest(bucket, prefix, o) {
      const response = await answer("POST", "/v1/sign/prefix", { bucket, prefix, expires_in: o?.expiresIn }, o?.signal, "application/x-ndjson");
      for await (const line of ndjson<ManifestLine | { error: { code: string; message: string } }>(response)) {
        if ("error" in line) throw streamError(line.error);
        yield line;
      }
    },

    async upload(bucket, object, input, o = {}) {
      const data = toBlob(input, o.contentType);
      const contentType = o.contentType || data.type || "application/octet-stream";
      const ctx: UploadContext = { transport: t, call, bucket, object, data, contentType, options: o, progress: new Progress(data.size, o.onProgress) };
      const flow = o.flow ?? "auto";
      const result = (protocol: Protocol, used: UploadResult["flow"]): UploadResult => {
        protocols.set(bucket, protocol);
        return { bucket, object, size: data.size, protocol, flow: used };
      };
      if (flow === "form") {
        await form(ctx);
        return result(protocols.get(bucket) ?? "gcs-v4", "form");
      }
      const known = protocols.get(bucket);
      // An S3 multipart upload holds at least one byte: an empty object is one PUT there.
      const chunked = (flow === "chunked" && !(data.size === 0 && known === "s3-sigv4")) || (flow === "auto" && data.size > (o.chunkSize ?? DEFAULT_CHUNK));
      // A chunked upload on GCS or S3 starts with its own step; anything else needs the PUT URL
      // (a single PUT, Azure's blocks), which also says the protocol.
      if (chunked && known === "gcs-v4") {
        await resumable(ctx);
        return result(known, "resumable");
      }
      if (chunked && known === "s3-sigv4") {
        await multipart(ctx);
        return result(known, "multipart");
      }
      const signed = remember(bucket, await signPut(ctx));
      const protocol = signed.protocol as Protocol;
      if (!chunked) {
        await single(ctx, signed);
        return result(protocol, "single");
      }
      switch (protocol) {
        case "gcs-v4":
          await resumable(ctx);
          return result(protocol, "resumable");
        case "s3-sigv4":
          if (data.size === 0) {
            await single(ctx, signed);
            return result(protocol, "single");
          }
          await multipart(ctx);
          return result(protocol, "multipart");
        case "azure-sas":
          await blocks(ctx, signed);
          return result(protocol, "blocks");
        default:
          throw new StorageBrokerError(`no chunked upload for protocol ${protocol}`, { code: "unsupported_by_client", status: 0, source: "broker" });
      }
    },

    async download(bucket, object, o = {}) {
      const signed = await client.sign(
        { bucket, object, method: "GET", response_content_type: o.responseContentType, response_content_disposition: o.responseContentDisposition },
        o,
      );
      const response = await client.fetchSigned(signed, o);
      const total = Number(response.headers.get("content-length")) || undefined;
      if (!o.onProgress || !response.body) return response.blob();
      const chunks: Uint8Array[] = [];
      let loaded = 0;
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks.push(value);
        loaded += value.byteLength;
        o.onProgress({ loaded, total });
      }
      return new Blob(chunks as BlobPart[], { type: response.headers.get("content-type") ?? "" });
    },

    async fetchSigned(signed, o = {}) {
      const headers: Record<string, string> = { ...(signed.headers ?? {}) };
      if (o.range) headers.Range = `bytes=${o.range.start}-${o.range.end === undefined ? "" : o.range.end - 1}`;
      let response: Response | undefined;
      const answer = await sendRetrying(
        { ...t, xhr: false, fetch: async (url, init) => (response = await t.fetch(url, init)) },
        { method: "GET", url: signed.url, headers, signal: o.signal },
        "storage",
      );
      if (!response) throw networkError("storage", new Error("no answer"));
      if (answer.status < 200 || answer.status > 299) throw storageError(answer.status, await answer.text(), signed.expires_at);
      return response;
    },

    async delete(bucket, object, o) {
      const signed = await client.sign({ bucket, object, method: "DELETE" }, o);
      const answer = await sendRetrying(t, { method: "DELETE", url: signed.url, headers: signed.headers, signal: o?.signal }, "storage");
      // A DELETE retried after storage had already done it finds nothing: that is success too.
      if (answer.status === 404) return;
      if (answer.status < 200 || answer.status > 299) throw storageError(answer.status, await answer.text(), signed.expires_at);
    },

    uploadPolicy: (request, o) => call<UploadPolicy>("/v1/upload-policy", request, o?.signal),

    listPage(bucket, o) {
      const query = new URLSearchParams();
      if (o?.prefix) query.set("prefix", o.prefix);
      if (o?.pageToken) query.set("page_token", o.pageToken);
      return json<ObjectPage>("GET", `/v1/buckets/${path(bucket)}/objects?${query}`, undefined, o?.signal);
    },
    bucket: (name, o) => json<Bucket>("GET", `/v1/buckets/${path(name)}`, undefined, o?.signal),
    createBucket: (request, o) => json<Bucket>("POST", "/v1/buckets", request, o?.signal, false),
    deleteBucket: (name, o) => nothing("DELETE", `/v1/buckets/${path(name)}`, o?.signal),
    projects: async (o) => (await json<Schemas["ProjectList"]>("GET", "/v1/projects", undefined, o?.signal)).projects,
    project: (slug, o) => json<Project>("GET", `/v1/projects/${path(slug)}`, undefined, o?.signal),
    createProject: (request, o) => json<Project>("POST", "/v1/projects", request, o?.signal, false),
    setMember: (slug, member, role, o) => json<Member>("PUT", `/v1/projects/${path(slug)}/members/${path(member)}`, { role }, o?.signal),
    removeMember: (slug, member, o) => nothing("DELETE", `/v1/projects/${path(slug)}/members/${path(member)}`, o?.signal),
    grants: async (bucket, o) => (await json<Schemas["GrantList"]>("GET", `/v1/buckets/${path(bucket)}/grants`, undefined, o?.signal)).grants,
    grant: (bucket, grant, o) => json<Grant>("POST", `/v1/buckets/${path(bucket)}/grants`, grant, o?.signal, false),
    revokeGrant: (bucket, id, o) => nothing("DELETE", `/v1/buckets/${path(bucket)}/grants/${path(id)}`, o?.signal),
    auditPage(bucket, o = {}) {
      const query = new URLSearchParams();
      for (const name of ["subject", "object_prefix", "decision", "since", "until", "bucket"] as const) {
        const value = o[name];
        if (value) query.set(name, value);
      }
      if (o.limit) query.set("limit", String(o.limit));
      if (o.pageToken) query.set("page_token", o.pageToken);
      const route = bucket === null ? `/v1/audit?${query}` : `/v1/buckets/${path(bucket)}/audit?${query}`;
      return json<AuditPage>("GET", route, undefined, o.signal);
    },

    async uploadParameters(bucket, object, file, o = {}) {
      const contentType = file.type || "application/octet-stream";
      if (o.form) {
        const policy = await client.uploadPolicy({ bucket, object, content_type: contentType, max_size: file.size, expires_in: o.expiresIn }, o);
        return { method: "POST", url: policy.url, fields: policy.fields, headers: {} };
      }
      const signed = await client.sign(
        { bucket, object, method: "PUT", content_type: contentType, size: file.size, metadata: o.metadata, expires_in: o.expiresIn },
        o,
      );
      const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== "content-length"));
      return { method: "PUT", url: signed.url, fields: {}, headers };
    },
  };
  return client;
}

function streamError(error: { code: string; message: string }): StorageBrokerError {
  return new StorageBrokerError(error.message, { code: error.code, status: 200, source: "broker" });
}

/** The lines of an NDJSON body, parsed, as they arrive. */
async function* ndjson<T>(response: Response): AsyncGenerator<T> {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buffered += value;
    let newline: number;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim();
      buffered = buffered.slice(newline + 1);
      if (line) yield JSON.parse(line) as T;
    }
    if (done) break;
  }
  if (buffered.trim()) yield JSON.parse(buffered) as T;
}

function toBlob(input: Blob | ArrayBuffer | ArrayBufferView | string, type?: string): Blob {
  if (input instanceof Blob) return input;
  return new Blob([input as BlobPart], type ? { type } : undefined);
}

// The client: the broker's API as typed calls, and uploads and downloads through the URLs it signs.
import { StorageBrokerError, brokerError, networkError, storageError } from "./errors.js";
import { sendRetrying, transport } from "./transport.js";
import { DEFAULT_CHUNK, Progress, blocks, form, multipart, resumable, signPut, single, } from "./upload.js";
const JSON_HEADERS = { "Content-Type": "application/json" };
export function createClient(options) {
    const base = options.baseUrl.replace(/\/+$/, "");
    const t = transport(options);
    // Protocols seen per bucket: a chunked upload to a bucket known to be on GCS or S3 needs no probe.
    const protocols = new Map();
    /** The bearer token; none when neither is given (behind a gatekeeper, which adds it). */
    async function token() {
        return (options.getToken ? await options.getToken() : options.token) || undefined;
    }
    /** A broker call. `idempotent` calls are retried on network errors and 5xx; others are sent once. */
    async function answer(method, path, body, signal, accept = "application/json", idempotent = true) {
        const bearer = await token();
        const headers = { Accept: accept, ...(bearer ? { Authorization: `Bearer ${bearer}` } : {}) };
        if (body !== undefined)
            Object.assign(headers, JSON_HEADERS);
        const once = { ...t, retries: idempotent ? t.retries : 0 };
        let response;
        // Through the retrying transport (fetch), keeping the Response for streamed bodies.
        await sendRetrying({ ...once, xhr: false, fetch: async (url, init) => (response = await t.fetch(url, init)) }, { method, url: base + path, headers, body: body === undefined ? null : JSON.stringify(body), signal }, "the broker");
        if (!response)
            throw networkError("the broker", new Error("no answer"));
        if (!response.ok)
            throw brokerError(response.status, await response.text());
        return response;
    }
    const json = async (method, path, body, signal, idempotent = true) => (await (await answer(method, path, body, signal, "application/json", idempotent)).json());
    const call = (path, body, signal) => json("POST", path, body, signal);
    const remember = (bucket, signed) => {
        if (signed.protocol)
            protocols.set(bucket, signed.protocol);
        return signed;
    };
    const path = encodeURIComponent;
    const nothing = async (method, route, signal) => {
        await answer(method, route, undefined, signal, "application/json", method !== "POST");
    };
    const client = {
        me: (o) => json("GET", "/v1/me", undefined, o?.signal),
        buckets: async (o) => (await json("GET", "/v1/buckets", undefined, o?.signal)).buckets,
        async *list(bucket, o) {
            let pageToken;
            do {
                const query = new URLSearchParams();
                if (o?.prefix)
                    query.set("prefix", o.prefix);
                if (pageToken)
                    query.set("page_token", pageToken);
                const page = await json("GET", `/v1/buckets/${encodeURIComponent(bucket)}/objects?${query}`, undefined, o?.signal);
                yield page;
                pageToken = page.next_page_token;
            } while (pageToken);
        },
        sign: async (request, o) => remember(request.bucket, await call("/v1/sign", request, o?.signal)),
        async *batch(items, o) {
            const response = await answer("POST", "/v1/sign/batch", { items, expires_in: o?.expiresIn }, o?.signal, "application/x-ndjson");
            for await (const line of ndjson(response)) {
                if (!("index" in line))
                    throw streamError(line.error);
                yield line;
            }
        },
        async *manifest(bucket, prefix, o) {
            const response = await answer("POST", "/v1/sign/prefix", { bucket, prefix, expires_in: o?.expiresIn }, o?.signal, "application/x-ndjson");
            for await (const line of ndjson(response)) {
                if ("error" in line)
                    throw streamError(line.error);
                yield line;
            }
        },
        async upload(bucket, object, input, o = {}) {
            const data = toBlob(input, o.contentType);
            const contentType = o.contentType || data.type || "application/octet-stream";
            const ctx = { transport: t, call, bucket, object, data, contentType, options: o, progress: new Progress(data.size, o.onProgress) };
            const flow = o.flow ?? "auto";
            const result = (protocol, used) => {
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
            const protocol = signed.protocol;
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
            const signed = await client.sign({ bucket, object, method: "GET", response_content_type: o.responseContentType, response_content_disposition: o.responseContentDisposition }, o);
            const response = await client.fetchSigned(signed, o);
            const total = Number(response.headers.get("content-length")) || undefined;
            if (!o.onProgress || !response.body)
                return response.blob();
            const chunks = [];
            let loaded = 0;
            const reader = response.body.getReader();
            for (;;) {
                const { value, done } = await reader.read();
                if (done)
                    break;
                chunks.push(value);
                loaded += value.byteLength;
                o.onProgress({ loaded, total });
            }
            return new Blob(chunks, { type: response.headers.get("content-type") ?? "" });
        },
        async fetchSigned(signed, o = {}) {
            const headers = { ...(signed.headers ?? {}) };
            if (o.range)
                headers.Range = `bytes=${o.range.start}-${o.range.end === undefined ? "" : o.range.end - 1}`;
            let response;
            const answer = await sendRetrying({ ...t, xhr: false, fetch: async (url, init) => (response = await t.fetch(url, init)) }, { method: "GET", url: signed.url, headers, signal: o.signal }, "storage");
            if (!response)
                throw networkError("storage", new Error("no answer"));
            if (answer.status < 200 || answer.status > 299)
                throw storageError(answer.status, await answer.text(), signed.expires_at);
            return response;
        },
        async delete(bucket, object, o) {
            const signed = await client.sign({ bucket, object, method: "DELETE" }, o);
            const answer = await sendRetrying(t, { method: "DELETE", url: signed.url, headers: signed.headers, signal: o?.signal }, "storage");
            // A DELETE retried after storage had already done it finds nothing: that is success too.
            if (answer.status === 404)
                return;
            if (answer.status < 200 || answer.status > 299)
                throw storageError(answer.status, await answer.text(), signed.expires_at);
        },
        uploadPolicy: (request, o) => call("/v1/upload-policy", request, o?.signal),
        listPage(bucket, o) {
            const query = new URLSearchParams();
            if (o?.prefix)
                query.set("prefix", o.prefix);
            if (o?.pageToken)
                query.set("page_token", o.pageToken);
            return json("GET", `/v1/buckets/${path(bucket)}/objects?${query}`, undefined, o?.signal);
        },
        bucket: (name, o) => json("GET", `/v1/buckets/${path(name)}`, undefined, o?.signal),
        createBucket: (request, o) => json("POST", "/v1/buckets", request, o?.signal, false),
        deleteBucket: (name, o) => nothing("DELETE", `/v1/buckets/${path(name)}`, o?.signal),
        projects: async (o) => (await json("GET", "/v1/projects", undefined, o?.signal)).projects,
        project: (slug, o) => json("GET", `/v1/projects/${path(slug)}`, undefined, o?.signal),
        createProject: (request, o) => json("POST", "/v1/projects", request, o?.signal, false),
        setMember: (slug, member, role, o) => json("PUT", `/v1/projects/${path(slug)}/members/${path(member)}`, { role }, o?.signal),
        removeMember: (slug, member, o) => nothing("DELETE", `/v1/projects/${path(slug)}/members/${path(member)}`, o?.signal),
        grants: async (bucket, o) => (await json("GET", `/v1/buckets/${path(bucket)}/grants`, undefined, o?.signal)).grants,
        grant: (bucket, grant, o) => json("POST", `/v1/buckets/${path(bucket)}/grants`, grant, o?.signal, false),
        revokeGrant: (bucket, id, o) => nothing("DELETE", `/v1/buckets/${path(bucket)}/grants/${path(id)}`, o?.signal),
        auditPage(bucket, o = {}) {
            const query = new URLSearchParams();
            for (const name of ["subject", "object_prefix", "decision", "since", "until", "bucket"]) {
                const value = o[name];
                if (value)
                    query.set(name, value);
            }
            if (o.limit)
                query.set("limit", String(o.limit));
            if (o.pageToken)
                query.set("page_token", o.pageToken);
            const route = bucket === null ? `/v1/audit?${query}` : `/v1/buckets/${path(bucket)}/audit?${query}`;
            return json("GET", route, undefined, o.signal);
        },
        async uploadParameters(bucket, object, file, o = {}) {
            const contentType = file.type || "application/octet-stream";
            if (o.form) {
                const policy = await client.uploadPolicy({ bucket, object, content_type: contentType, max_size: file.size, expires_in: o.expiresIn }, o);
                return { method: "POST", url: policy.url, fields: policy.fields, headers: {} };
            }
            const signed = await client.sign({ bucket, object, method: "PUT", content_type: contentType, size: file.size, metadata: o.metadata, expires_in: o.expiresIn }, o);
            const headers = Object.fromEntries(Object.entries(signed.headers).filter(([name]) => name.toLowerCase() !== "content-length"));
            return { method: "PUT", url: signed.url, fields: {}, headers };
        },
    };
    return client;
}
function streamError(error) {
    return new StorageBrokerError(error.message, { code: error.code, status: 200, source: "broker" });
}
/** The lines of an NDJSON body, parsed, as they arrive. */
async function* ndjson(response) {
    if (!response.body)
        return;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
        const { value, done } = await reader.read();
        if (value)
            buffered += value;
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line)
                yield JSON.parse(line);
        }
        if (done)
            break;
    }
    if (buffered.trim())
        yield JSON.parse(buffered);
}
function toBlob(input, type) {
    if (input instanceof Blob)
        return input;
    return new Blob([input], type ? { type } : undefined);
}

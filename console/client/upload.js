// Uploads straight to storage, the way each storage takes them: one signed PUT, an HTML form POST
// (a policy), or in chunks — a GCS resumable session, an S3 multipart upload, Azure blocks and a
// block list. The broker signs; the bytes never pass through it.
import { StorageBrokerError, StorageCodes, storageError } from "./errors.js";
import { backoff, retryable, send, sendRetrying, sleep } from "./transport.js";
export const DEFAULT_CHUNK = 8 * 1024 * 1024;
const MIB = 1024 * 1024;
/** Bytes done plus bytes in flight, reported as one figure. */
export class Progress {
    total;
    report;
    done = 0;
    inflight = new Map();
    constructor(total, report) {
        this.total = total;
        this.report = report;
    }
    /** A callback for request `id`'s bytes sent so far. */
    sending(id) {
        return (sent) => {
            this.inflight.set(id, sent);
            this.emit();
        };
    }
    finished(id, bytes) {
        this.inflight.delete(id);
        this.done += bytes;
        this.emit();
    }
    /** Everything before `offset` is stored (a resumable session's committed offset). */
    committed(offset) {
        this.inflight.clear();
        this.done = offset;
        this.emit();
    }
    emit() {
        let loaded = this.done;
        for (const sent of this.inflight.values())
            loaded += sent;
        this.report?.({ loaded: Math.min(loaded, this.total), total: this.total });
    }
}
/** Headers a browser refuses to be told (it sets them itself); fetch ignores them too. */
function sendable(headers) {
    return Object.fromEntries(Object.entries(headers ?? {}).filter(([name]) => !["content-length", "host"].includes(name.toLowerCase())));
}
async function ok(answer, expiresAt) {
    if (answer.status < 200 || answer.status > 299)
        throw storageError(answer.status, await answer.text(), expiresAt);
    return answer;
}
/** Signs a PUT for the whole object: the single flow's URL, and the protocol (and Azure's block URL). */
export function signPut(ctx) {
    const { bucket, object, contentType, data, options } = ctx;
    return ctx.call("/v1/sign", { bucket, object, method: "PUT", content_type: contentType, size: data.size, metadata: options.metadata, expires_in: options.expiresIn }, options.signal);
}
export async function single(ctx, signed) {
    const answer = await sendRetrying(ctx.transport, { method: "PUT", url: signed.url, headers: sendable(signed.headers), body: ctx.data, signal: ctx.options.signal, onProgress: ctx.progress.sending(0) }, "storage");
    await ok(answer, signed.expires_at);
    ctx.progress.finished(0, ctx.data.size);
}
export async function form(ctx) {
    const { bucket, object, contentType, data, options } = ctx;
    const policy = await ctx.call("/v1/upload-policy", { bucket, object, content_type: contentType, max_size: data.size, expires_in: options.expiresIn }, options.signal);
    const body = new FormData();
    for (const [name, value] of Object.entries(policy.fields))
        body.append(name, value);
    body.append("file", data); // the file comes last in a policy form
    const answer = await sendRetrying(ctx.transport, { method: "POST", url: policy.url, body, signal: options.signal, onProgress: (n) => ctx.progress.sending(0)(Math.min(n, data.size)) }, "storage");
    await ok(answer, policy.expires_at);
    ctx.progress.finished(0, data.size);
}
/**
 * GCS: a resumable session, its chunks PUT in order with Content-Range. A chunk that fails (a
 * dropped connection, a 5xx) is not sent again blindly: the session is asked what it has
 * committed (`Content-Range: bytes *\/SIZE`) and the upload goes on from there.
 */
export async function resumable(ctx) {
    const { bucket, object, contentType, data, options, transport: t } = ctx;
    const signal = options.signal;
    const signed = await ctx.call("/v1/sign", { bucket, object, method: "RESUMABLE", content_type: contentType, max_size: data.size, metadata: options.metadata, expires_in: options.expiresIn }, signal);
    // A RESUMABLE URL is used with POST and the headers listed (x-goog-resumable: start).
    const started = await ok(await sendRetrying(t, { method: "POST", url: signed.url, headers: sendable(signed.headers), signal }, "storage"), signed.expires_at);
    const session = started.header("location");
    if (!session)
        throw new StorageBrokerError("storage started no upload session (is Location exposed by its CORS setup?)", { code: StorageCodes.other, status: started.status, source: "storage" });
    const chunk = Math.max(256 * 1024, Math.floor((options.chunkSize ?? DEFAULT_CHUNK) / (256 * 1024)) * 256 * 1024);
    const size = data.size;
    let offset = 0;
    let failures = 0;
    for (;;) {
        const end = Math.min(offset + chunk, size);
        const range = size === 0 ? "bytes */0" : `bytes ${offset}-${end - 1}/${size}`;
        let answer;
        try {
            answer = await send(t, { method: "PUT", url: session, headers: { "Content-Range": range }, body: data.slice(offset, end), signal, onProgress: ctx.progress.sending(0) });
        }
        catch (e) {
            if (signal?.aborted)
                throw signal.reason;
            answer = undefined; // the connection dropped: ask the session below
        }
        if (answer && (answer.status === 200 || answer.status === 201)) {
            ctx.progress.committed(size);
            return;
        }
        if (answer && answer.status === 308) {
            // Stored up to the Range it names (read when CORS exposes it; else this whole chunk).
            const next = committedOffset(answer, t, end);
            failures = next > offset ? 0 : failures + 1;
            offset = next;
            ctx.progress.committed(offset);
            if (failures > t.retries)
                throw storageError(308, "<Error><Message>the session stores no more of the upload</Message></Error>");
            continue;
        }
        if (answer && !retryable(answer.status))
            await ok(answer, signed.expires_at);
        if (++failures > t.retries) {
            throw answer ? storageError(answer.status, await answer.text()) : new StorageBrokerError("storage cannot be reached", { code: "network_error", status: 0, source: "network" });
        }
        await sleep(backoff(failures - 1, answer?.header("retry-after")), signal);
        const status = await queryOffset(ctx, session, size);
        if (status === "complete") {
            ctx.progress.committed(size);
            return;
        }
        if (status !== undefined) {
            offset = status;
            ctx.progress.committed(offset);
        }
    }
}
/**
 * The offset after the last byte a 308 says is stored (`Range: bytes=0-N`); no Range means none.
 * A browser sees Range only when storage's CORS setup exposes it: there, a 308 without one is
 * taken to have stored the chunk sent (`sent`).
 */
function committedOffset(answer, t, sent) {
    const range = answer.header("range");
    if (range === null)
        return t.xhr ? sent : 0;
    const match = /bytes=0-(\d+)/.exec(range);
    return match ? Number(match[1]) + 1 : 0;
}
/** Asks a session what it has: the committed offset, `complete`, or undefined (no answer: ask again later). */
async function queryOffset(ctx, session, size) {
    let answer;
    try {
        answer = await send(ctx.transport, { method: "PUT", url: session, headers: { "Content-Range": `bytes */${size}` }, body: "", signal: ctx.options.signal });
    }
    catch (e) {
        if (ctx.options.signal?.aborted)
            throw ctx.options.signal.reason;
        return undefined;
    }
    if (answer.status === 200 || answer.status === 201)
        return "complete";
    if (answer.status === 308)
        return committedOffset(answer, ctx.transport, 0);
    if (retryable(answer.status))
        return undefined;
    // 404/410: the session is gone (expired after a week, or cancelled).
    throw storageError(answer.status, await answer.text());
}
/**
 * S3: create a multipart upload, PUT its parts (several at once, each retried), complete it with
 * the parts' ETags. Any failure, or the signal, aborts the upload so that no part is left stored
 * (and billed).
 */
export async function multipart(ctx) {
    const { bucket, object, contentType, data, options, transport: t } = ctx;
    const size = data.size;
    // Stops the parts still in flight when one fails, as the caller's signal does.
    const halt = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, halt.signal]) : halt.signal;
    // `detached`: the abort, which must run whatever the signals say.
    const step = (action, fields, detached = false) => ctx.call("/v1/sign/multipart", { bucket, object, action, expires_in: options.expiresIn, ...fields }, detached ? undefined : signal);
    const request = (r, body, onProgress, detached = false) => sendRetrying(t, { method: r.method, url: r.url, headers: sendable(r.headers), body, signal: detached ? undefined : signal, onProgress }, "storage");
    const created = await step("create", { content_type: contentType, size, metadata: options.metadata });
    const createAnswer = await ok(await request(first(created), null), created.expires_at);
    const uploadId = /<UploadId>([^<]+)<\/UploadId>/.exec(await createAnswer.text())?.[1];
    if (!uploadId)
        throw new StorageBrokerError("storage started no multipart upload", { code: StorageCodes.other, status: createAnswer.status, source: "storage" });
    try {
        // Where the class limits object sizes the broker fixes the part size (it says so); else at
        // least 5 MiB, and few enough parts for S3's 10,000.
        const partSize = created.part_size ?? Math.max(5 * MIB, options.chunkSize ?? DEFAULT_CHUNK, Math.ceil(size / 10_000));
        const total = Math.ceil(size / partSize);
        const etags = new Array(total);
        // Part URLs are signed a group at a time, just before they are used, so none expires waiting.
        const group = Math.max(8, 2 * (options.concurrency ?? 4));
        const signedGroups = new Map();
        const signedPart = async (n) => {
            const start = Math.floor((n - 1) / group) * group + 1;
            let pending = signedGroups.get(start);
            if (!pending) {
                pending = step("parts", { upload_id: uploadId, size, part_size: partSize, first_part: start, part_count: Math.min(group, total - start + 1) });
                signedGroups.set(start, pending);
            }
            const signed = await pending;
            const part = signed.requests.find((r) => r.part_number === n);
            if (!part)
                throw new StorageBrokerError(`the broker signed no part ${n}`, { code: "internal", status: 0, source: "broker" });
            return { part, expiresAt: signed.expires_at };
        };
        let next = 1;
        const worker = async () => {
            try {
                while (next <= total) {
                    const n = next++;
                    const { part, expiresAt } = await signedPart(n);
                    const body = data.slice((n - 1) * partSize, Math.min(n * partSize, size));
                    const answer = await ok(await request(part, body, ctx.progress.sending(n)), expiresAt);
                    const etag = answer.header("etag");
                    if (!etag)
                        throw new StorageBrokerError("storage did not show a part's ETag (is ETag exposed by its CORS setup?)", { code: StorageCodes.other, status: answer.status, source: "storage" });
                    etags[n - 1] = etag;
                    ctx.progress.finished(n, body.size);
                }
            }
            catch (e) {
                halt.abort(e);
                throw e;
            }
        };
        // Every worker has stopped before the upload is completed or aborted: a part still in
        // flight after the abort would be stored again, and left behind.
        const outcomes = await Promise.allSettled(Array.from({ length: Math.min(total, options.concurrency ?? 4) }, worker));
        const failed = outcomes.find((o) => o.status === "rejected");
        if (failed)
            throw options.signal?.aborted ? options.signal.reason : failed.reason;
        const complete = await step("complete", { upload_id: uploadId });
        const list = etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${xmlEscape(etag)}</ETag></Part>`).join("");
        const completed = await ok(await request(first(complete), `<CompleteMultipartUpload>${list}</CompleteMultipartUpload>`), complete.expires_at);
        // S3 may answer 200 and still fail the completion, with an <Error> body.
        const text = await completed.text();
        if (/<Error>/.test(text))
            throw storageError(500, text);
        ctx.progress.committed(size);
    }
    catch (e) {
        // Stored parts cost money until the upload is aborted; this runs whatever the caller's signal says.
        await step("abort", { upload_id: uploadId }, true)
            .then((abort) => request(first(abort), null, undefined, true))
            .catch(() => undefined);
        throw e;
    }
}
/** Azure: Put Block for each chunk on the PUT URL (its SAS has create and write), then Put Block List. */
export async function blocks(ctx, signed) {
    const { data, options, transport: t, contentType } = ctx;
    const signal = options.signal;
    const chunk = Math.max(1, options.chunkSize ?? DEFAULT_CHUNK);
    const total = Math.ceil(data.size / chunk);
    // Block ids are base64 of the same length within a blob.
    const ids = Array.from({ length: total }, (_, i) => btoa(`block-${String(i).padStart(6, "0")}`));
    const at = (params) => {
        const url = new URL(signed.url);
        for (const [name, value] of Object.entries(params))
            url.searchParams.set(name, value);
        return url.toString();
    };
    let next = 0;
    const worker = async () => {
        while (next < total) {
            const i = next++;
            const body = data.slice(i * chunk, Math.min((i + 1) * chunk, data.size));
            const answer = await sendRetrying(t, { method: "PUT", url: at({ comp: "block", blockid: ids[i] }), body, signal, onProgress: ctx.progress.sending(i) }, "storage");
            await ok(answer, signed.expires_at);
            ctx.progress.finished(i, body.size);
        }
    };
    await Promise.all(Array.from({ length: Math.min(total, options.concurrency ?? 4) }, worker));
    // What the PUT would have sent as the blob's headers go with the block list as x-ms-blob-*.
    const headers = { "x-ms-blob-content-type": contentType };
    for (const [name, value] of Object.entries(signed.headers ?? {})) {
        if (name.toLowerCase().startsWith("x-ms-meta-"))
            headers[name] = value;
    }
    const list = `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join("")}</BlockList>`;
    await ok(await sendRetrying(t, { method: "PUT", url: at({ comp: "blocklist" }), headers, body: list, signal }, "storage"), signed.expires_at);
    ctx.progress.committed(data.size);
}
function first(answer) {
    const [request] = answer.requests;
    if (!request)
        throw new StorageBrokerError("the broker signed no request", { code: "internal", status: 0, source: "broker" });
    return request;
}
const xmlEscape = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

// One HTTP request, and the same request retried with backoff on what a retry can cure: network
// errors, 408, 429 and 5xx. In a browser, requests with a body go through XMLHttpRequest, the one
// API that reports upload progress; everywhere else (and whenever a `fetch` is given) through fetch.
import { networkError } from "./errors.js";
export function transport(options) {
    return {
        fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
        xhr: options.fetch === undefined && typeof globalThis.XMLHttpRequest === "function",
        retries: options.retries ?? 4,
    };
}
/** What a retry may cure. */
export const retryable = (status) => status === 408 || status === 429 || status >= 500;
const aborted = (signal) => signal?.aborted === true;
/** One attempt. Rejects with the signal's reason when aborted, with the network's error otherwise. */
export async function send(t, req) {
    req.signal?.throwIfAborted();
    if (t.xhr && req.body != null)
        return viaXhr(req);
    const response = await t.fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body ?? undefined,
        signal: req.signal,
    });
    if (req.onProgress && req.body instanceof Blob)
        req.onProgress(req.body.size);
    return { status: response.status, header: (name) => response.headers.get(name), text: () => response.text() };
}
function viaXhr(req) {
    return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open(req.method, req.url);
        for (const [name, value] of Object.entries(req.headers ?? {}))
            xhr.setRequestHeader(name, value);
        const onProgress = req.onProgress;
        if (onProgress)
            xhr.upload.onprogress = (e) => onProgress(e.loaded);
        const abort = () => xhr.abort();
        req.signal?.addEventListener("abort", abort, { once: true });
        const done = () => req.signal?.removeEventListener("abort", abort);
        xhr.onload = () => {
            done();
            // From the headers CORS lets the page see (asking for another one logs a warning).
            const headers = new Map();
            for (const line of xhr.getAllResponseHeaders().trim().split(/[\r\n]+/)) {
                const colon = line.indexOf(":");
                if (colon > 0)
                    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
            }
            resolve({ status: xhr.status, header: (name) => headers.get(name.toLowerCase()) ?? null, text: async () => xhr.responseText });
        };
        xhr.onerror = () => {
            done();
            reject(new TypeError("network error (or a CORS refusal)"));
        };
        xhr.onabort = () => {
            done();
            reject(req.signal?.reason ?? new DOMException("aborted", "AbortError"));
        };
        xhr.send(req.body ?? null);
    });
}
/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms, signal) {
    return new Promise((resolve, reject) => {
        if (aborted(signal))
            return reject(signal?.reason);
        const timer = setTimeout(() => {
            signal?.removeEventListener("abort", stop);
            resolve();
        }, ms);
        const stop = () => {
            clearTimeout(timer);
            reject(signal?.reason);
        };
        signal?.addEventListener("abort", stop, { once: true });
    });
}
/** Exponential backoff with full jitter (250 ms, 500 ms, … capped at 8 s), or the server's Retry-After. */
export function backoff(attempt, retryAfter) {
    const told = Number(retryAfter);
    if (retryAfter && Number.isFinite(told) && told >= 0)
        return Math.min(told, 30) * 1000;
    return Math.random() * Math.min(8000, 250 * 2 ** attempt);
}
/**
 * The request, retried with backoff on network errors and retryable statuses, at most `t.retries`
 * times. Answers the last answer (whatever its status); rejects with a `network_error` when the
 * last attempt got none, or with the signal's reason when aborted.
 */
export async function sendRetrying(t, req, what) {
    for (let attempt = 0;; attempt++) {
        let wait;
        try {
            const answer = await send(t, req);
            if (!retryable(answer.status) || attempt >= t.retries)
                return answer;
            wait = backoff(attempt, answer.header("retry-after"));
        }
        catch (e) {
            if (aborted(req.signal))
                throw req.signal?.reason;
            if (attempt >= t.retries)
                throw networkError(what, e);
            wait = backoff(attempt);
        }
        req.onProgress?.(0);
        await sleep(wait, req.signal);
    }
}

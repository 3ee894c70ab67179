// Every failure the client reports is a StorageBrokerError with a stable `code`: the broker's own
// problem+json code, or, for what storage answers, one code per meaning whatever the storage (GCS,
// S3 and Azure each spell "expired" or "too large" their own way).
/**
 * Codes for what storage answers, alike on GCS, S3 and Azure. Where the broker has a code for the
 * same meaning (`size_exceeds_limit`, `content_type_not_allowed`) it is that code.
 */
export const StorageCodes = {
    /** The signed URL's expiry passed before storage took the request. */
    expired: "url_expired",
    /** More bytes than the URL (or the bucket's class) allows. */
    tooLarge: "size_exceeds_limit",
    /** A content type the URL or policy does not allow. */
    wrongType: "content_type_not_allowed",
    /** Storage refused the signature or the permission (tampered, wrong headers, wrong method). */
    forbidden: "storage_forbidden",
    /** No such object (a download) or no such upload session / multipart upload. */
    notFound: "object_not_found",
    uploadGone: "upload_not_found",
    /** Storage failed or was unreachable after the retries. */
    unavailable: "storage_unavailable",
    /** Anything else storage refused; `storageCode` says what. */
    other: "storage_error",
};
export class StorageBrokerError extends Error {
    /** Stable code: the broker's problem `code`, one of {@link StorageCodes}, or `network_error`. */
    code;
    /** HTTP status (0 when no answer came). */
    status;
    source;
    /** The broker's problem document, when the broker answered. */
    problem;
    /** Storage's own error code (`<Code>` of its XML answer), when storage answered. */
    storageCode;
    constructor(message, init) {
        super(message, init.cause === undefined ? undefined : { cause: init.cause });
        this.name = "StorageBrokerError";
        this.code = init.code;
        this.status = init.status;
        this.source = init.source;
        this.problem = init.problem;
        this.storageCode = init.storageCode;
    }
}
/** The error for a broker answer that is not 2xx, from its problem+json body (or its absence). */
export function brokerError(status, body) {
    let problem;
    try {
        const parsed = JSON.parse(body);
        if (parsed && typeof parsed === "object" && typeof parsed.code === "string")
            problem = parsed;
    }
    catch {
        // not JSON: a proxy's page, say
    }
    const code = problem?.code ?? (status === 401 ? "unauthorized" : status === 403 ? "forbidden" : status === 404 ? "not_found" : status >= 500 ? "unavailable" : "http_error");
    const message = problem?.detail || problem?.title || `the broker answered ${status}`;
    return new StorageBrokerError(message, { code, status, source: "broker", problem });
}
const tag = (xml, name) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? "";
/**
 * The error for a storage answer that is not 2xx, from its XML body. GCS says ExpiredToken, S3
 * AccessDenied "Request has expired" (or RequestTimeTooSkewed), Azure AuthenticationFailed "Signed
 * expiry time [...] has to be after current time [...]"; Azurite only AuthorizationFailure, which
 * is why a 403 after the URL's own `expiresAt` counts as expired too.
 */
export function storageError(status, body, expiresAt) {
    const storageCode = tag(body, "Code");
    const text = `${tag(body, "Message")} ${tag(body, "Details")} ${tag(body, "AuthenticationErrorDetail")}`.trim();
    const expired = expiresAt !== undefined && Date.parse(expiresAt) <= Date.now();
    let code;
    if (storageCode === "ExpiredToken" || storageCode === "RequestTimeTooSkewed" || /expired|signed expiry time/i.test(text) || (status === 403 && expired)) {
        code = StorageCodes.expired;
    }
    else if (["EntityTooLarge", "RequestBodyTooLarge", "MaxMessageLengthExceeded"].includes(storageCode) || /content-length-range|too large/i.test(text)) {
        code = StorageCodes.tooLarge;
    }
    else if (/content-type/i.test(text) && /policy|condition/i.test(text)) {
        code = StorageCodes.wrongType;
    }
    else if (["NoSuchUpload", "InvalidBlockList"].includes(storageCode) || ((status === 404 || status === 410) && /upload/i.test(text))) {
        code = StorageCodes.uploadGone;
    }
    else if (["NoSuchKey", "BlobNotFound"].includes(storageCode) || status === 404) {
        code = StorageCodes.notFound;
    }
    else if (["AccessDenied", "SignatureDoesNotMatch", "AuthenticationFailed", "AuthorizationFailure", "InvalidAccessKeyId"].includes(storageCode) || status === 401 || status === 403) {
        code = StorageCodes.forbidden;
    }
    else if (status >= 500 || status === 429) {
        code = StorageCodes.unavailable;
    }
    else {
        code = StorageCodes.other;
    }
    const message = `storage answered ${status}${storageCode ? ` ${storageCode}` : ""}${text ? `: ${text}` : ""}`;
    return new StorageBrokerError(message, { code, status, source: "storage", storageCode: storageCode || undefined });
}
export function networkError(what, cause) {
    return new StorageBrokerError(`${what} cannot be reached: ${cause instanceof Error ? cause.message : String(cause)}`, {
        code: "network_error",
        status: 0,
        source: "network",
        cause,
    });
}

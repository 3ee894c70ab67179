// A browser app on storage-broker: a token from the dev issuer, a signed URL (PUT), a POST
// policy (HTML form) or a large upload in 8 MiB chunks from the broker, then the bytes go
// straight to storage with a progress bar. Each answer names the protocol storage speaks
// (gcs-v4, s3-sigv4, azure-sas), and a large upload takes that storage's own way: a GCS
// resumable session, an S3 multipart upload, or Azure blocks. Open it as
// index.html?broker=http://127.0.0.1:8080 with the broker's BROKER_CORS_ORIGINS naming this
// page's origin.

const broker = (new URLSearchParams(location.search).get("broker") || "http://127.0.0.1:8080").replace(/\/$/, "");
// GCS resumable chunks must be multiples of 256 KiB; S3 parts (but the last) at least 5 MiB,
// and the broker may fix their size; Azure blocks at most 4000 MiB.
const CHUNK = 8 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
let token = null;
let bucket = null;

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").className = kind;
}

/** An error whose message is meant for the person at the page (`code`: the broker's, if any). */
class Shown extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** What the broker's problem+json codes mean to a user. */
function brokerMessage(problem, status) {
  switch (problem.code) {
    case "content_type_not_allowed":
      return `This kind of file is not allowed in this bucket (${problem.detail}).`;
    case "content_type_required":
      return "This bucket needs to know the file's type; this file has none.";
    case "max_size_exceeds_limit":
    case "size_exceeds_limit":
      return `This file is too large for this bucket (${problem.detail}).`;
    case "unsupported_by_backend":
      return `This bucket's storage cannot do that (${problem.detail}).`;
    case "unauthorized":
      return "You are not signed in, or your session has ended: sign in again.";
    case "not_found":
    case "forbidden":
      return "You may not upload here.";
    case "unavailable":
      return "The broker is busy or down for a moment: try again shortly.";
    default:
      return problem.detail || `The broker answered ${status}.`;
  }
}

/**
 * What storage's XML errors mean to a user, alike for GCS, S3 and Azure: GCS says ExpiredToken,
 * S3 AccessDenied "Request has expired" (or RequestTimeTooSkewed), Azure AuthenticationFailed
 * "Signed expiry time [...] has to be after current time [...]"; S3 refuses too many bytes with
 * EntityTooLarge, Azure a block above its limit with RequestBodyTooLarge. (Azurite answers an
 * expired SAS with AuthorizationFailure and nothing about time: there the page can only say
 * that storage refused the link.)
 */
function storageMessage(status, text) {
  const code = (/<Code>([^<]*)<\/Code>/.exec(text) || [])[1] || "";
  if (code === "ExpiredToken" || code === "RequestTimeTooSkewed" || /expired|signed expiry time/i.test(text)) {
    return "The upload link has expired: upload again to get a fresh one.";
  }
  if (["EntityTooLarge", "RequestBodyTooLarge"].includes(code) || /content-length-range|too large/i.test(text)) {
    return "The file is larger than this upload link allows.";
  }
  if (["AccessDenied", "SignatureDoesNotMatch", "AuthenticationFailed", "AuthorizationFailure"].includes(code) || status === 403) {
    return "Storage refused the upload link.";
  }
  return `Storage answered ${status}${code ? ` (${code})` : ""}.`;
}

async function api(path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(broker + path, {
      method: body ? "POST" : "GET",
      headers,
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch {
    throw new Shown(`The broker at ${broker} cannot be reached.`);
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    throw new Shown(brokerMessage(problem, response.status), problem.code);
  }
  return response.json();
}

/** One request with upload progress; resolves with the XHR whatever its status. */
function send(method, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress && onProgress(e.loaded);
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Shown("Storage cannot be reached (network or CORS)."));
    xhr.send(body);
  });
}

function ok(xhr) {
  if (xhr.status < 200 || xhr.status > 299) throw new Shown(storageMessage(xhr.status, xhr.responseText));
}

/** The headers of an answer a browser may send: it sets Content-Length itself and refuses to be told. */
function sendable(headers) {
  return Object.fromEntries(Object.entries(headers || {}).filter(([name]) => name.toLowerCase() !== "content-length"));
}

/** A link from the broker that has already expired is not worth sending bytes to. */
function fresh(signed) {
  if (Date.parse(signed.expires_at) <= Date.now()) {
    throw new Shown("The upload link has expired: upload again to get a fresh one.");
  }
}

function progress(done, total) {
  $("progress").value = total ? Math.floor((100 * done) / total) : 100;
}

/** A signed PUT for the file, bound to its exact size (S3 binds it as Content-Length, GCS as an exact range). */
async function signPut(file, object, type) {
  const signed = await api("/v1/sign", { bucket, object, method: "PUT", content_type: type, size: file.size });
  fresh(signed);
  return signed;
}

async function uploadPut(file, object, type) {
  const signed = await signPut(file, object, type);
  ok(await send("PUT", signed.url, sendable(signed.headers), file, (n) => progress(n, file.size)));
}

async function uploadForm(file, object, type) {
  let policy;
  try {
    policy = await api("/v1/upload-policy", { bucket, object, content_type: type, max_size: file.size });
  } catch (e) {
    if (e.code !== "unsupported_by_backend") throw e;
    throw new Shown("This bucket's storage takes no form uploads: choose signed PUT or large file instead.");
  }
  fresh(policy);
  const form = new FormData();
  for (const [name, value] of Object.entries(policy.fields)) form.append(name, value);
  form.append("file", file); // the file comes last in a policy form
  ok(await send("POST", policy.url, {}, form, (n) => progress(Math.min(n, file.size), file.size)));
}

/**
 * A large file in 8 MiB chunks, the way its storage takes them. A signed PUT tells the protocol
 * (and is what Azure's blocks go to); a file of one chunk or less simply goes up with it.
 */
async function uploadLarge(file, object, type) {
  const signed = await signPut(file, object, type);
  if (file.size <= CHUNK) {
    ok(await send("PUT", signed.url, sendable(signed.headers), file, (n) => progress(n, file.size)));
    return;
  }
  const upload = { "gcs-v4": resumable, "s3-sigv4": multipart, "azure-sas": blocks }[signed.protocol];
  if (!upload) throw new Shown(`This page does not know how to upload large files to ${signed.protocol} storage.`);
  await upload(file, object, type, signed);
}

/** GCS: a resumable session, its chunks PUT with Content-Range. */
async function resumable(file, object, type) {
  const signed = await api("/v1/sign", { bucket, object, method: "RESUMABLE", content_type: type, max_size: file.size });
  fresh(signed);
  // A RESUMABLE URL is used with POST and the headers the broker lists (x-goog-resumable: start).
  const start = await send("POST", signed.url, signed.headers, null);
  ok(start);
  const session = start.getResponseHeader("Location");
  if (!session) throw new Shown("Storage started no upload session (is Location exposed by its CORS setup?).");
  let offset = 0;
  do {
    const end = Math.min(offset + CHUNK, file.size);
    const range = file.size ? `bytes ${offset}-${end - 1}/${file.size}` : "bytes */0";
    const xhr = await send("PUT", session, { "Content-Range": range }, file.slice(offset, end), (n) => progress(offset + n, file.size));
    // 308: this chunk is stored, send the next; 200/201: the object is complete.
    if (xhr.status !== 308) {
      ok(xhr);
      return;
    }
    offset = end;
  } while (offset < file.size);
  throw new Shown("Storage took every chunk but did not complete the upload.");
}

/** S3: create a multipart upload, PUT each part, complete it with the parts' ETags; abort on failure. */
async function multipart(file, object, type) {
  const step = async (action, fields) => {
    const answer = await api("/v1/sign/multipart", { bucket, object, action, ...fields });
    fresh(answer);
    return answer;
  };
  const call = (request, body, onProgress) => send(request.method, request.url, sendable(request.headers), body, onProgress);
  const started = await step("create", { content_type: type, size: file.size });
  // Where the bucket limits object sizes, the broker fixes the part size (so that no mix of
  // signed parts can add up to more than the limit) and says it here.
  const partSize = started.part_size || CHUNK;
  const [create] = started.requests;
  const created = await call(create, null);
  ok(created);
  const uploadId = new DOMParser().parseFromString(created.responseText, "application/xml").getElementsByTagName("UploadId")[0]?.textContent;
  if (!uploadId) throw new Shown("Storage started no multipart upload.");
  try {
    const parts = [];
    // Part URLs are signed a few at a time, so that none expires while earlier parts go up.
    const total = Math.ceil(file.size / partSize);
    for (let first = 1; first <= total; first += 8) {
      const signed = await step("parts", { upload_id: uploadId, size: file.size, part_size: partSize, first_part: first, part_count: 8 });
      for (const part of signed.requests) {
        const offset = (part.part_number - 1) * partSize;
        const xhr = await call(part, file.slice(offset, offset + partSize), (n) => progress(offset + n, file.size));
        ok(xhr);
        const etag = xhr.getResponseHeader("ETag");
        if (!etag) throw new Shown("Storage did not show a part's ETag (is ETag exposed by its CORS setup?).");
        parts.push(`<Part><PartNumber>${part.part_number}</PartNumber><ETag>${etag.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</ETag></Part>`);
      }
    }
    const [complete] = (await step("complete", { upload_id: uploadId })).requests;
    const list = new Blob([`<CompleteMultipartUpload>${parts.join("")}</CompleteMultipartUpload>`], { type: "application/xml" });
    const completed = await call(complete, list);
    ok(completed);
    // S3 may answer 200 and still fail the completion, with an <Error> body.
    if (/<Error>/.test(completed.responseText)) throw new Shown(storageMessage(completed.status, completed.responseText));
  } catch (e) {
    // Parts already stored cost money until the upload is aborted; a failed abort changes nothing here.
    await step("abort", { upload_id: uploadId }).then(({ requests: [abort] }) => call(abort, null)).catch(() => {});
    throw e;
  }
}

/** Azure: Put Block for each chunk on the PUT URL, then Put Block List (the SAS has create+write). */
async function blocks(file, object, type, signed) {
  const ids = [];
  for (let offset = 0; offset < file.size; offset += CHUNK) {
    // Block ids are base64 of equal length within a blob.
    const id = btoa(`block-${String(ids.length).padStart(6, "0")}`);
    const url = `${signed.url}&comp=block&blockid=${encodeURIComponent(id)}`;
    ok(await send("PUT", url, {}, file.slice(offset, offset + CHUNK), (n) => progress(offset + n, file.size)));
    ids.push(id);
  }
  // What the PUT would have sent as the blob's headers go with the block list as x-ms-blob-*.
  const headers = { "x-ms-blob-content-type": type };
  for (const [name, value] of Object.entries(signed.headers || {})) {
    if (name.toLowerCase().startsWith("x-ms-meta-")) headers[name] = value;
  }
  const list = `<?xml version="1.0" encoding="utf-8"?><BlockList>${ids.map((id) => `<Latest>${id}</Latest>`).join("")}</BlockList>`;
  ok(await send("PUT", `${signed.url}&comp=blocklist`, headers, list));
}

async function refresh() {
  const listing = await api(`/v1/buckets/${encodeURIComponent(bucket)}/objects`);
  const list = $("objects");
  list.replaceChildren(
    ...listing.objects.map((o) => {
      const li = document.createElement("li");
      li.textContent = `${o.name} — ${o.size} bytes${o.content_type ? `, ${o.content_type}` : ""}`;
      li.dataset.name = o.name;
      return li;
    }),
  );
}

async function show(object) {
  const signed = await api("/v1/sign", { bucket, object, method: "GET" });
  const img = $("preview");
  img.dataset.loaded = "";
  img.onload = () => (img.dataset.loaded = object);
  img.src = signed.url;
}

$("signin").onclick = async () => {
  try {
    const user = $("user").value.trim();
    const response = await fetch(`${broker}/dev/token?sub=${encodeURIComponent(user)}`);
    if (!response.ok) throw new Shown("The dev issuer gave no token (is `storage-broker dev` running?).");
    token = (await response.json()).access_token;
    bucket = (await api("/v1/me")).personal_bucket;
    $("who").textContent = `${user}, bucket ${bucket}`;
    $("upload").disabled = false;
    say(`Signed in as ${user}.`);
    await refresh();
  } catch (e) {
    say(e instanceof Shown ? e.message : `Sign-in failed: ${e}`, "error");
  }
};

$("upload").onclick = async () => {
  const file = $("file").files[0];
  if (!file) return say("Choose a file first.", "error");
  const mode = document.querySelector("input[name=mode]:checked").value;
  const type = file.type || "application/octet-stream";
  const object = `browser/${mode}/${file.name}`;
  progress(0, 1);
  say(`Uploading ${file.name} (${file.size} bytes)…`);
  try {
    await { put: uploadPut, post: uploadForm, large: uploadLarge }[mode](file, object, type);
    progress(1, 1);
    // The listing first: once the page says "Uploaded", the object is in it. A listing that
    // fails does not make the upload a failure.
    const listed = await refresh().then(() => "", () => " (the list could not be refreshed)");
    say(`Uploaded ${object}.${listed}`, "done");
    if (type.startsWith("image/")) await show(object);
  } catch (e) {
    say(e instanceof Shown ? e.message : `Upload failed: ${e}`, "error");
  }
};

// A browser app on storage-broker: a token from the dev issuer, a signed URL (PUT), a POST
// policy (HTML form) or a resumable session (large files) from the broker, then the bytes go
// straight to storage with a progress bar. Open it as index.html?broker=http://127.0.0.1:8080
// with the broker's BROKER_CORS_ORIGINS naming this page's origin.

const broker = (new URLSearchParams(location.search).get("broker") || "http://127.0.0.1:8080").replace(/\/$/, "");
// Resumable chunks must be multiples of 256 KiB.
const CHUNK = 8 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
let token = null;
let bucket = null;

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").className = kind;
}

/** An error whose message is meant for the person at the page. */
class Shown extends Error {}

/** What the broker's problem+json codes mean to a user. */
function brokerMessage(problem, status) {
  switch (problem.code) {
    case "content_type_not_allowed":
      return `This kind of file is not allowed in this bucket (${problem.detail}).`;
    case "content_type_required":
      return "This bucket needs to know the file's type; this file has none.";
    case "max_size_exceeds_limit":
      return `This file is too large for this bucket (${problem.detail}).`;
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

/** What storage's XML errors mean to a user. */
function storageMessage(status, text) {
  const code = (/<Code>([^<]*)<\/Code>/.exec(text) || [])[1] || "";
  if (code === "ExpiredToken" || /expired/i.test(text)) {
    return "The upload link has expired: upload again to get a fresh one.";
  }
  if (code === "EntityTooLarge" || /content-length-range|too large/i.test(text)) {
    return "The file is larger than this upload link allows.";
  }
  if (code === "AccessDenied" || code === "SignatureDoesNotMatch" || status === 403) {
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
    throw new Shown(brokerMessage(problem, response.status));
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

/** A link from the broker that has already expired is not worth sending bytes to. */
function fresh(signed) {
  if (Date.parse(signed.expires_at) <= Date.now()) {
    throw new Shown("The upload link has expired: upload again to get a fresh one.");
  }
}

function progress(done, total) {
  $("progress").value = total ? Math.floor((100 * done) / total) : 100;
}

async function uploadPut(file, object, type) {
  const signed = await api("/v1/sign", { bucket, object, method: "PUT", content_type: type, max_size: file.size });
  fresh(signed);
  ok(await send("PUT", signed.url, signed.headers, file, (n) => progress(n, file.size)));
}

async function uploadForm(file, object, type) {
  const policy = await api("/v1/upload-policy", { bucket, object, content_type: type, max_size: file.size });
  fresh(policy);
  const form = new FormData();
  for (const [name, value] of Object.entries(policy.fields)) form.append(name, value);
  form.append("file", file); // the file comes last in a policy form
  ok(await send("POST", policy.url, {}, form, (n) => progress(Math.min(n, file.size), file.size)));
}

async function uploadResumable(file, object, type) {
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
    await { put: uploadPut, post: uploadForm, resumable: uploadResumable }[mode](file, object, type);
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

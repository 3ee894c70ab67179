// A browser app on storage-broker through its client (clients/js): a token from the dev issuer,
// then a signed PUT, a POST policy (HTML form) or a large upload the way its storage takes it
// (a GCS resumable session, an S3 multipart upload, Azure blocks), with a progress bar. The bytes
// go straight to storage. Open it as
// http://HOST/examples/browser-upload/index.html?broker=http://127.0.0.1:8080 (served from the
// repository's root, with clients/js built), the broker's BROKER_CORS_ORIGINS naming this origin.
import { createClient, StorageBrokerError } from "../../clients/js/dist/index.js";

const broker = (new URLSearchParams(location.search).get("broker") || "http://127.0.0.1:8080").replace(/\/$/, "");
// Chunks (GCS), parts (S3) and blocks (Azure) of 8 MiB; a file of one chunk or less goes as one PUT.
const CHUNK = 8 * 1024 * 1024;
const $ = (id) => document.getElementById(id);
let client = null;
let bucket = null;

function say(text, kind = "info") {
  $("status").textContent = text;
  $("status").className = kind;
}

/** What an error means to the person at the page, from its stable code. */
function message(e, mode) {
  if (!(e instanceof StorageBrokerError)) return `Upload failed: ${e}`;
  const detail = e.problem?.detail ?? e.message;
  if (e.source === "storage") {
    switch (e.code) {
      case "url_expired":
        return "The upload link has expired: upload again to get a fresh one.";
      case "size_exceeds_limit":
        return "The file is larger than this upload link allows.";
      case "storage_forbidden":
        return "Storage refused the upload link.";
      default:
        return `Storage answered ${e.status}${e.storageCode ? ` (${e.storageCode})` : ""}.`;
    }
  }
  if (e.source === "network") {
    return e.message.startsWith("the broker") ? `The broker at ${broker} cannot be reached.` : "Storage cannot be reached (network or CORS).";
  }
  switch (e.code) {
    case "content_type_not_allowed":
      return `This kind of file is not allowed in this bucket (${detail}).`;
    case "content_type_required":
      return "This bucket needs to know the file's type; this file has none.";
    case "max_size_exceeds_limit":
    case "size_exceeds_limit":
      return `This file is too large for this bucket (${detail}).`;
    case "unsupported_by_backend":
      return mode === "post"
        ? "This bucket's storage takes no form uploads: choose signed PUT or large file instead."
        : `This bucket's storage cannot do that (${detail}).`;
    case "unauthorized":
      return "You are not signed in, or your session has ended: sign in again.";
    case "not_found":
    case "forbidden":
      return "You may not upload here.";
    case "unavailable":
      return "The broker is busy or down for a moment: try again shortly.";
    default:
      return detail || `The broker answered ${e.status}.`;
  }
}

function progress(done, total) {
  $("progress").value = total ? Math.floor((100 * done) / total) : 100;
}

async function refresh() {
  const objects = [];
  for await (const page of client.list(bucket)) objects.push(...page.objects);
  $("objects").replaceChildren(
    ...objects.map((o) => {
      const li = document.createElement("li");
      li.textContent = `${o.name} — ${o.size} bytes${o.content_type ? `, ${o.content_type}` : ""}`;
      li.dataset.name = o.name;
      return li;
    }),
  );
}

async function show(object) {
  const signed = await client.sign({ bucket, object, method: "GET" });
  const img = $("preview");
  img.dataset.loaded = "";
  img.onload = () => (img.dataset.loaded = object);
  img.src = signed.url;
}

$("signin").onclick = async () => {
  try {
    const user = $("user").value.trim();
    const response = await fetch(`${broker}/dev/token?sub=${encodeURIComponent(user)}`).catch(() => null);
    if (!response?.ok) throw new Error("the dev issuer gave no token (is `storage-broker dev` running?)");
    client = createClient({ baseUrl: broker, token: (await response.json()).access_token });
    bucket = (await client.me()).personal_bucket;
    $("who").textContent = `${user}, bucket ${bucket}`;
    $("upload").disabled = false;
    say(`Signed in as ${user}.`);
    await refresh();
  } catch (e) {
    say(e instanceof StorageBrokerError ? message(e) : `Sign-in failed: ${e.message ?? e}`, "error");
  }
};

$("upload").onclick = async () => {
  const file = $("file").files[0];
  if (!file) return say("Choose a file first.", "error");
  const mode = document.querySelector("input[name=mode]:checked").value;
  const object = `browser/${mode}/${file.name}`;
  progress(0, 1);
  say(`Uploading ${file.name} (${file.size} bytes)…`);
  try {
    await client.upload(bucket, object, file, {
      contentType: file.type || "application/octet-stream",
      flow: { put: "single", post: "form", large: "auto" }[mode],
      chunkSize: CHUNK,
      onProgress: ({ loaded, total }) => progress(loaded, total),
    });
    progress(1, 1);
    // The listing first: once the page says "Uploaded", the object is in it. A listing that
    // fails does not make the upload a failure.
    const listed = await refresh().then(() => "", () => " (the list could not be refreshed)");
    say(`Uploaded ${object}.${listed}`, "done");
    if (file.type.startsWith("image/")) await show(object);
  } catch (e) {
    say(message(e, mode), "error");
  }
};

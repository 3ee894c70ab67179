// What goes wrong on the way: a connection dropped in the middle of a resumable upload, storage
// answering 503, a cancelled upload (and, on S3, that it leaves no parts behind).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "../dist/index.js";
import { as, backend, broker, bytesOf, pendingMultipartUploads, random, sha, token, unique } from "./helpers.mjs";

const MIB = 1024 * 1024;
const storageRequest = (url) => !String(url).startsWith(broker);

/** A fetch that runs `hook(n, url, init)` around the n-th request (from 1) matching `which`. */
function instrumented(which, hook) {
  let n = 0;
  const log = [];
  const wrapped = async (url, init = {}) => {
    const entry = { url: String(url), method: init.method ?? "GET", headers: { ...(init.headers ?? {}) }, bytes: init.body instanceof Blob ? init.body.size : 0 };
    log.push(entry);
    if (which(entry)) return hook(++n, url, init, entry);
    return fetch(url, init);
  };
  return { fetch: wrapped, log };
}

const session = (e) => e.method === "PUT" && /upload_id=|upload_?id=/i.test(e.url) && storageRequest(e.url);

test("gcs: a connection dropped after storage took a chunk resumes from the committed offset, sending no byte twice", { skip: backend !== "gcs" && "GCS resumable sessions only" }, async () => {
  const bytes = random(12 * MIB + 5);
  const { fetch: f, log } = instrumented(
    (e) => session(e) && e.bytes > 0,
    async (n, url, init) => {
      const answer = await fetch(url, init);
      // The second chunk reached storage, but its answer is lost with the connection.
      if (n === 2) throw new TypeError("fetch failed: socket hang up");
      return answer;
    },
  );
  const client = createClient({ baseUrl: broker, token: await token("resumer"), fetch: f });
  const { personal_bucket: bucket } = await client.me();
  const object = unique("resumed");
  const result = await client.upload(bucket, object, bytes, { flow: "chunked", chunkSize: 4 * MIB });
  assert.equal(result.flow, "resumable");
  assert.equal(sha(await bytesOf(await client.download(bucket, object))), sha(bytes));
  const puts = log.filter(session);
  const query = puts.find((e) => e.headers["Content-Range"] === `bytes */${bytes.length}`);
  assert.ok(query, "the session was not asked for its committed offset");
  const sent = puts.reduce((total, e) => total + e.bytes, 0);
  assert.equal(sent, bytes.length, `${sent} bytes sent for ${bytes.length}: a chunk went twice`);
});

test("gcs: a chunk that never reached storage is sent again from the committed offset", { skip: backend !== "gcs" && "GCS resumable sessions only" }, async () => {
  const bytes = random(10 * MIB);
  const { fetch: f, log } = instrumented(
    (e) => session(e) && e.bytes > 0,
    async (n, url, init) => {
      if (n === 2) throw new TypeError("fetch failed: connect ECONNRESET");
      return fetch(url, init);
    },
  );
  const client = createClient({ baseUrl: broker, token: await token("resumer"), fetch: f });
  const { personal_bucket: bucket } = await client.me();
  const object = unique("resent");
  await client.upload(bucket, object, bytes, { flow: "chunked", chunkSize: 4 * MIB });
  assert.equal(sha(await bytesOf(await client.download(bucket, object))), sha(bytes));
  const ranges = log.filter((e) => session(e) && e.bytes > 0).map((e) => e.headers["Content-Range"]);
  assert.deepEqual(ranges, [
    `bytes 0-${4 * MIB - 1}/${bytes.length}`,
    `bytes ${4 * MIB}-${8 * MIB - 1}/${bytes.length}`, // dropped before it left
    `bytes ${4 * MIB}-${8 * MIB - 1}/${bytes.length}`,
    `bytes ${8 * MIB}-${bytes.length - 1}/${bytes.length}`,
  ]);
});

test(`${backend}: storage answering 503 is retried with backoff until it takes the bytes`, async () => {
  const failed = new Set();
  const { fetch: f, log } = instrumented(
    (e) => storageRequest(e.url) && e.method === "PUT",
    async (n, url, init, entry) => {
      const key = `${entry.url} ${entry.headers["Content-Range"] ?? ""}`;
      if (!failed.has(key)) {
        failed.add(key);
        return new Response("<Error><Code>ServiceUnavailable</Code><Message>busy</Message></Error>", { status: 503 });
      }
      return fetch(url, init);
    },
  );
  const client = createClient({ baseUrl: broker, token: await token("retrier"), fetch: f });
  const { personal_bucket: bucket } = await client.me();
  for (const [flow, size] of [["single", 1000], ["chunked", 11 * MIB]]) {
    const bytes = random(size);
    const object = unique(`retried-${flow}`);
    await client.upload(bucket, object, bytes, { flow, chunkSize: 5 * MIB });
    assert.equal(sha(await bytesOf(await client.download(bucket, object))), sha(bytes));
  }
  assert.ok(failed.size >= 2, `only ${failed.size} requests were refused`);
  assert.ok(log.length > failed.size);
});

test(`${backend}: an upload cancelled with its AbortSignal rejects with the signal's reason and stores nothing`, async () => {
  const { client, bucket } = await as("canceller");
  const object = unique("cancelled");
  const controller = new AbortController();
  const upload = client.upload(bucket, object, random(40 * MIB), {
    flow: "chunked",
    chunkSize: 5 * MIB,
    concurrency: 2,
    signal: controller.signal,
    onProgress: ({ loaded }) => loaded > 0 && controller.abort(),
  });
  await assert.rejects(upload, (e) => e.name === "AbortError");
  await assert.rejects(client.download(bucket, object), { code: "object_not_found" });
  if (backend === "s3") {
    // The abort step ran: no part of the upload is left stored (and billed).
    const pending = pendingMultipartUploads("storage-broker-data", "");
    const signed = await client.sign({ bucket, object, method: "GET" });
    const key = decodeURIComponent(new URL(signed.url).pathname.split("/").slice(2).join("/"));
    const mine = pendingMultipartUploads("storage-broker-data", key);
    assert.deepEqual(mine, [], `multipart uploads left for ${key}: ${mine} (all pending: ${pending})`);
  }
});

test(`${backend}: a signal aborted before the upload starts sends nothing`, async () => {
  const { fetch: f, log } = instrumented(() => false, null);
  const client = createClient({ baseUrl: broker, token: await token("canceller"), fetch: f });
  const controller = new AbortController();
  controller.abort(new Error("changed my mind"));
  await assert.rejects(client.upload("u-canceller", "never", "x", { signal: controller.signal }), /changed my mind/);
  assert.equal(log.length, 0);
});

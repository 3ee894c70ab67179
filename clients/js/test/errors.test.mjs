// Failures surface as StorageBrokerError with a stable code: the broker's problem codes, and
// storage's XML errors mapped to one code per meaning whatever the storage.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient, StorageBrokerError, StorageCodes } from "../dist/index.js";
import { storageError } from "../dist/errors.js";
import { as, backend, broker, token, unique } from "./helpers.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test(`${backend}: 401 for a bad token, a forged one, and none`, async () => {
  const bad = createClient({ baseUrl: broker, token: "not-a-token" });
  await assert.rejects(bad.me(), (e) => e instanceof StorageBrokerError && e.code === "unauthorized" && e.status === 401 && e.source === "broker" && e.problem?.code === "unauthorized");
  // A real token with its claims changed: the signature no longer holds.
  const [head, , signature] = (await token("honest")).split(".");
  const claims = Buffer.from(JSON.stringify({ sub: "admin", aud: "storage-broker", exp: Math.floor(Date.now() / 1000) + 600 })).toString("base64url");
  const forged = createClient({ baseUrl: broker, token: `${head}.${claims}.${signature}` });
  await assert.rejects(forged.sign({ bucket: "u-admin", object: "x", method: "GET" }), { code: "unauthorized", status: 401 });
  await assert.rejects(createClient({ baseUrl: broker }).me(), { code: "unauthorized" });
});

test(`${backend}: getToken is asked before each call, so a refreshed token is used`, async () => {
  let asked = 0;
  const client = createClient({ baseUrl: broker, getToken: async () => (asked++, token("refreshing")) });
  await client.me();
  await client.buckets();
  assert.equal(asked, 2);
});

test(`${backend}: 403 where the caller may read but not write, 404 for a bucket out of sight`, async () => {
  const alice = await as("alice-errors");
  // Alice shares a prefix with bob, read-only.
  const shared = `${unique("shared")}/`;
  await alice.client.upload(alice.bucket, `${shared}readme.txt`, "read me");
  const grant = await fetch(`${broker}/v1/buckets/${alice.bucket}/grants`, {
    method: "POST",
    headers: { Authorization: `Bearer ${await token("alice-errors")}`, "Content-Type": "application/json" },
    body: JSON.stringify({ prefix: shared, principal: "user:bob-errors", role: "viewer" }),
  });
  assert.equal(grant.status, 201, await grant.text());
  const bob = await as("bob-errors");
  assert.equal(await (await bob.client.download(alice.bucket, `${shared}readme.txt`)).text(), "read me");
  await assert.rejects(bob.client.upload(alice.bucket, `${shared}mine.txt`, "no"), { code: "forbidden", status: 403, source: "broker" });
  await assert.rejects(bob.client.sign({ bucket: "u-nobody-at-all", object: "x", method: "GET" }), { code: "not_found", status: 404 });
  // A missing object: the broker signs (bob may read there), storage answers 404.
  await assert.rejects(bob.client.download(alice.bucket, `${shared}missing.txt`), { code: StorageCodes.notFound, status: 404, source: "storage" });
});

test(`${backend}: a URL used after it expired is url_expired`, { skip: backend === "gcs" && "fake-gcs-server checks no signature or expiry (the mapping is tested below)" }, async () => {
  const { client, bucket } = await as("late");
  const object = unique("late");
  await client.upload(bucket, object, "too late");
  const signed = await client.sign({ bucket, object, method: "GET", expires_in: 1 });
  await sleep(2500);
  await assert.rejects(client.fetchSigned(signed), (e) => e.code === StorageCodes.expired && e.source === "storage" && e.status === 403);
});

test(`${backend}: the broker's refusals are typed by their problem code`, async () => {
  const { client, bucket } = await as("refused");
  await assert.rejects(client.sign({ bucket, object: "a/../b", method: "GET" }), (e) => e.status === 400 && e.code === e.problem.code && e.code.length > 0);
  if (backend === "azure") {
    await assert.rejects(client.upload(bucket, "form.txt", "x", { flow: "form" }), { code: "unsupported_by_backend", status: 400 });
  }
});

// Storage's own words, as GCS, S3 (and SeaweedFS) and Azure (and Azurite) write them.
const samples = [
  ["GCS expired", 400, "<Error><Code>ExpiredToken</Code><Message>Invalid argument.</Message><Details>The provided token has expired.</Details></Error>", StorageCodes.expired],
  ["S3 expired", 403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>900</X-Amz-Expires></Error>", StorageCodes.expired],
  ["S3 clock skew", 403, "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the server's time is too large.</Message></Error>", StorageCodes.expired],
  ["Azure expired", 403, "<Error><Code>AuthenticationFailed</Code><Message>Server failed to authenticate the request.</Message><AuthenticationErrorDetail>Signed expiry time [Tue, 24 Nov 2026 10:00:00 GMT] has to be after current time [Tue, 24 Nov 2026 10:05:00 GMT]</AuthenticationErrorDetail></Error>", StorageCodes.expired],
  ["GCS too large", 400, "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload is larger than the maximum object size specified in your Policy Document.</Message><Details>Content-length exceeds upper bound on range</Details></Error>", StorageCodes.tooLarge],
  ["S3 too large", 400, "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload exceeds the maximum allowed size</Message></Error>", StorageCodes.tooLarge],
  ["Azure block too large", 413, "<Error><Code>RequestBodyTooLarge</Code><Message>The request body is too large and exceeds the maximum permissible limit.</Message></Error>", StorageCodes.tooLarge],
  ["S3 form, wrong type", 403, '<Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/png"]</Message></Error>', StorageCodes.wrongType],
  ["GCS form, wrong type", 400, "<Error><Code>InvalidPolicyDocument</Code><Message>The content of the form does not meet the conditions specified in the policy document.</Message><Details>Policy did not reference these fields: content-type</Details></Error>", StorageCodes.wrongType],
  ["S3 tampered", 403, "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error>", StorageCodes.forbidden],
  ["Azurite tampered", 403, "<Error><Code>AuthorizationFailure</Code><Message>This request is not authorized to perform this operation.</Message></Error>", StorageCodes.forbidden],
  ["S3 missing", 404, "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>", StorageCodes.notFound],
  ["Azure missing", 404, "<Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.</Message></Error>", StorageCodes.notFound],
  ["S3 upload gone", 404, "<Error><Code>NoSuchUpload</Code><Message>The specified multipart upload does not exist.</Message></Error>", StorageCodes.uploadGone],
  ["S3 busy", 503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>", StorageCodes.unavailable],
];
for (const [what, status, xml, code] of samples) {
  test(`storage's answer "${what}" is ${code}`, () => {
    const error = storageError(status, xml);
    assert.equal(error.code, code);
    assert.equal(error.source, "storage");
    assert.equal(error.status, status);
    assert.ok(error.storageCode);
  });
}

test("a 403 that names no reason, after the URL's expiry, is url_expired (Azurite says only AuthorizationFailure)", () => {
  const xml = "<Error><Code>AuthorizationFailure</Code><Message>This request is not authorized to perform this operation.</Message></Error>";
  assert.equal(storageError(403, xml, new Date(Date.now() - 1000).toISOString()).code, StorageCodes.expired);
  assert.equal(storageError(403, xml, new Date(Date.now() + 60_000).toISOString()).code, StorageCodes.forbidden);
});

// The API calls: who am I, my buckets, listing through page tokens, batches and manifests streamed
// as NDJSON, and the Uppy recipe.
import { test } from "node:test";
import assert from "node:assert/strict";
import { as, backend, bytesOf, protocol, sha, unique } from "./helpers.mjs";

const { client, bucket } = await as("caller");

test(`${backend}: me and buckets`, async () => {
  const me = await client.me();
  assert.equal(me.subject, "caller");
  assert.equal(me.personal_bucket, bucket);
  const buckets = await client.buckets();
  const mine = buckets.find((b) => b.name === bucket);
  assert.ok(mine, `${bucket} not among ${buckets.map((b) => b.name)}`);
  assert.ok(mine.actions.includes("write"));
});

test(`${backend}: a batch streams a URL per item in order, and an error for the item that has none`, async () => {
  const object = unique("batch");
  await client.upload(bucket, object, "batched");
  const results = [];
  for await (const result of client.batch([
    { bucket, object, method: "GET" },
    { bucket: "u-nobody-at-all", object: "x", method: "GET" },
    { bucket, object: "../escape", method: "GET" },
  ])) results.push(result);
  assert.deepEqual(results.map((r) => r.index), [0, 1, 2]);
  assert.equal(results[0].protocol, protocol);
  assert.equal(await (await client.fetchSigned(results[0])).text(), "batched");
  assert.equal(results[1].error.code, "not_found");
  assert.ok(results[2].error, "a dot segment was signed");
});

test(`${backend}: a manifest lists a signed GET for every object under the prefix`, async () => {
  const prefix = `${unique("manifest")}/`;
  const names = ["a.txt", "b/c.txt", "d.txt"];
  for (const name of names) await client.upload(bucket, prefix + name, `content of ${name}`);
  const lines = [];
  for await (const line of client.manifest(bucket, prefix)) lines.push(line);
  assert.deepEqual(lines.map((l) => l.object).sort(), names.map((n) => prefix + n));
  for (const line of lines) {
    assert.equal(line.size, `content of ${line.object.slice(prefix.length)}`.length);
    assert.equal(await (await client.fetchSigned(line)).text(), `content of ${line.object.slice(prefix.length)}`);
  }
});

test(`${backend}: list pages through more than one page of objects`, { skip: backend !== "gcs" && "one backend is enough for paging" }, async () => {
  const prefix = `${unique("paged")}/`;
  const count = 1003;
  // Signed in one batch, put 16 at a time.
  const items = Array.from({ length: count }, (_, i) => ({ bucket, object: `${prefix}${String(i).padStart(4, "0")}`, method: "PUT", content_type: "text/plain", size: 1 }));
  const signed = [];
  for await (const result of client.batch(items)) signed.push(result);
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < signed.length) {
        const s = signed[next++];
        const headers = Object.fromEntries(Object.entries(s.headers).filter(([name]) => name !== "content-length"));
        const answer = await fetch(s.url, { method: "PUT", headers, body: "x" });
        assert.ok(answer.ok, `PUT ${s.index}: ${answer.status}`);
      }
    }),
  );
  const pages = [];
  for await (const page of client.list(bucket, { prefix })) pages.push(page);
  assert.ok(pages.length >= 2, `${pages.length} page(s)`);
  const listed = pages.flatMap((p) => p.objects.map((o) => o.name));
  assert.equal(listed.length, count);
  assert.equal(new Set(listed).size, count);
  assert.equal(pages.at(-1).next_page_token ?? null, null);
});

test(`${backend}: the Uppy recipe (getUploadParameters) gives what @uppy/aws-s3 sends`, async () => {
  const bytes = new TextEncoder().encode("uploaded the way Uppy does it\n");
  const file = { name: "uppy.txt", type: "text/plain", size: bytes.length, data: new Blob([bytes], { type: "text/plain" }) };
  const object = unique("uppy") + ".txt";
  // @uppy/aws-s3 calls getUploadParameters(file) and then sends file.data with XHR: a PUT with
  // the headers, or a form POST with the fields and then the file.
  const getUploadParameters = (f) => client.uploadParameters(bucket, object, f);
  const params = await getUploadParameters(file);
  assert.equal(params.method, "PUT");
  const answer = await fetch(params.url, { method: params.method, headers: params.headers, body: file.data });
  assert.ok(answer.ok, `${answer.status} ${await answer.text()}`);
  assert.equal(sha(await bytesOf(await client.download(bucket, object))), sha(bytes));
  if (backend !== "azure") {
    const formObject = unique("uppy-form") + ".txt";
    const form = await client.uploadParameters(bucket, formObject, file, { form: true });
    assert.equal(form.method, "POST");
    const body = new FormData();
    for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
    body.append("file", file.data);
    const posted = await fetch(form.url, { method: "POST", body });
    assert.ok(posted.ok, `${posted.status} ${await posted.text()}`);
    assert.equal(sha(await bytesOf(await client.download(bucket, formObject))), sha(bytes));
  }
});

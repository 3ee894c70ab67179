// Uploads by every flow the backend has, at the sizes where flows break (empty, one byte, one byte
// past a part, many parts), each downloaded again and compared byte for byte.
import { test } from "node:test";
import assert from "node:assert/strict";
import { as, backend, bytesOf, protocol, random, sha, unique } from "./helpers.mjs";

const MIB = 1024 * 1024;
const SIZES = [0, 1, 5 * MIB + 1, 50 * MIB];
// Azure takes no form uploads (the broker says unsupported_by_backend; see errors.test.mjs).
const FLOWS = backend === "azure" ? ["single", "chunked"] : ["single", "chunked", "form"];
const CHUNKED = { gcs: "resumable", s3: "multipart", azure: "blocks" }[backend];

const { client, bucket } = await as("uploader");

for (const flow of FLOWS) {
  for (const size of SIZES) {
    test(`${backend}: ${flow} upload of ${size} bytes comes back byte for byte`, async () => {
      const bytes = random(size);
      const object = `${flow}/${unique(`size-${size}`)}.bin`;
      const seen = [];
      const result = await client.upload(bucket, object, new Blob([bytes]), {
        flow,
        chunkSize: 5 * MIB,
        contentType: "application/octet-stream",
        metadata: { origin: "clients-js" },
        onProgress: (p) => seen.push(p),
      });
      assert.equal(result.protocol, protocol);
      // An S3 multipart upload holds at least one byte: the client sends an empty object as one PUT.
      const expected = flow !== "chunked" ? flow : backend === "s3" && size === 0 ? "single" : CHUNKED;
      assert.equal(result.flow, expected);
      assert.equal(result.size, size);
      const back = await bytesOf(await client.download(bucket, object));
      assert.equal(back.length, size);
      assert.equal(sha(back), sha(bytes));
      // Progress only grows, and ends at the whole.
      assert.ok(seen.length > 0, "no progress was reported");
      assert.deepEqual(seen.at(-1), { loaded: size, total: size });
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i].loaded >= 0 && seen[i].loaded <= size);
      if (flow === "chunked" && size > 5 * MIB) {
        const parts = seen.filter((p, i) => i > 0 && p.loaded > seen[i - 1].loaded).length;
        assert.ok(parts >= Math.ceil(size / (5 * MIB)) - 1, `progress moved ${parts} times for ${Math.ceil(size / (5 * MIB))} chunks`);
      }
    });
  }
}

test(`${backend}: auto picks one PUT for a small file and chunks for a large one`, async () => {
  const small = await client.upload(bucket, unique("auto-small"), random(1000), { chunkSize: 5 * MIB });
  assert.equal(small.flow, "single");
  const bytes = random(6 * MIB);
  const object = unique("auto-large");
  const large = await client.upload(bucket, object, bytes, { chunkSize: 5 * MIB });
  assert.equal(large.flow, CHUNKED);
  assert.equal(sha(await bytesOf(await client.download(bucket, object))), sha(bytes));
});

test(`${backend}: the content type and metadata asked for are what storage serves`, async () => {
  const object = unique("typed") + ".txt";
  await client.upload(bucket, object, "hello, typed world\n", { contentType: "text/plain" });
  const signed = await client.sign({ bucket, object, method: "GET" });
  const response = await client.fetchSigned(signed);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
  assert.equal(await response.text(), "hello, typed world\n");
  // A range read: the bytes asked for, and only those.
  const part = await client.fetchSigned(signed, { range: { start: 7, end: 12 } });
  assert.equal(part.status, 206);
  assert.equal(await part.text(), "typed");
});

test(`${backend}: delete removes the object, and deleting it again is not an error`, async () => {
  const object = unique("deleted");
  await client.upload(bucket, object, "bye");
  await client.delete(bucket, object);
  await assert.rejects(client.download(bucket, object), { code: "object_not_found", source: "storage" });
  await client.delete(bucket, object);
});

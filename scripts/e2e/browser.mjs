// Drives examples/browser-upload in headless Chromium as a person would, on one storage backend.
//   gcs: sign in, upload a 5 MiB image by signed PUT, a file by the POST-policy form and a 50 MiB
//     file as a large file (a resumable session), each downloaded again through a signed GET and
//     compared byte for byte; then the mistakes a user makes must show a clear message.
//   s3, azure: sign in, upload a 5 MiB image by signed PUT and 20 MiB as a large file (S3
//     multipart; Azure blocks and a block list), each downloaded through a signed GET and
//     compared; the listing shows both; forms (S3: uploaded and compared; Azure: a sentence);
//     storage's own refusal of a tampered link and its XML errors as sentences.
// Saves a screenshot. Exit 0 only when all of it held.
//   node browser.mjs PAGE_URL BROKER_URL SCREENSHOT [gcs|s3|azure]
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, crc32 } from "node:zlib";
import { createRequire } from "node:module";

// playwright-core lives where scripts/e2e-browser.sh installed it (E2E_TOOLS).
const { chromium } = createRequire(`${process.env.E2E_TOOLS}/`)("playwright-core");

const [pageUrl, broker, screenshot, backend = "gcs"] = process.argv.slice(2);
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};
const sha = (b) => createHash("sha256").update(b).digest("hex");

/** A real PNG of random pixels, stored uncompressed so that it is about `bytes` long. */
function png(bytes) {
  const width = 1024;
  const height = Math.ceil(bytes / (width * 3 + 1));
  const raw = Buffer.alloc(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) randomBytes(width * 3).copy(raw, y * (width * 3 + 1) + 1);
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw, { level: 0 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** The protocol each backend's answers name. */
const PROTOCOL = { gcs: "gcs-v4", s3: "s3-sigv4", azure: "azure-sas" }[backend];

/** A signed GET asked of the broker as any client would, and what storage answers to it. */
async function download(token, bucket, object) {
  const signed = await fetch(`${broker}/v1/sign`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ bucket, object, method: "GET" }),
  }).then((r) => r.json());
  if (signed.protocol !== PROTOCOL) failures.push(`the broker signed ${signed.protocol}, not ${PROTOCOL}`);
  const response = await fetch(signed.url);
  return Object.assign(Buffer.from(await response.arrayBuffer()), { type: response.headers.get("content-type"), url: signed.url });
}

/** Storage's XML error, answered in place of storage with CORS headers. */
const refuse = (status, code, more) => (route) =>
  route.fulfill({
    status,
    headers: { "Content-Type": "application/xml", "Access-Control-Allow-Origin": "*" },
    body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>${more}</Error>`,
  });

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  page.on("pageerror", (e) => failures.push(`page error: ${e}`));
  await page.goto(`${pageUrl}?broker=${encodeURIComponent(broker)}`);
  await page.click("#signin");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Signed in"), null, { timeout: 30000 });
  const bucket = (await page.textContent("#who")).split("bucket ")[1];
  const token = (await fetch(`${broker}/dev/token?sub=alice`).then((r) => r.json())).access_token;

  // Files go through disk: Playwright hands the browser buffers only up to 50 MB.
  const files = mkdtempSync(join(tmpdir(), "e2e-browser-"));
  // The browser types each file from its name, as it would for a person's file. The page says
  // "done" or "error" when it has finished; a deadline, not a pause, bounds the wait.
  async function upload(mode, name, buffer) {
    await page.check(`input[name=mode][value=${mode}]`);
    const path = join(files, name);
    writeFileSync(path, buffer);
    await page.setInputFiles("#file", path);

    await page.click("#upload");
    await page.waitForFunction(() => ["done", "error"].includes(document.querySelector("#status").className), null, { timeout: 180000 });
    return { kind: await page.getAttribute("#status", "class"), text: await page.textContent("#status") };
  }
  /** Uploads, then checks the page's word, the progress bar, the listing and the bytes. */
  async function uploaded(mode, name, bytes, type) {
    const started = Date.now();
    const result = await upload(mode, name, bytes);
    check(result.kind === "done", `${mode}: ${name} (${bytes.length} bytes) uploaded in ${Date.now() - started} ms — "${result.text}"`);
    check((await page.getAttribute("#progress", "value")) === "100", `${mode}: the progress bar reached 100%`);
    const object = `browser/${mode}/${name}`;
    check(await page.isVisible(`#objects li[data-name="${object}"]`), `${mode}: the listing shows ${object}`);
    const back = await download(token, bucket, object);
    check(sha(back) === sha(bytes), `${mode}: the bytes downloaded through a signed GET are the bytes uploaded`);
    if (type) check(back.type === type, `${mode}: storage serves it as ${type} (${back.type})`);
    return back;
  }

  if (backend === "gcs") {
    const cases = [
      ["put", "photo.png", png(5 * 1024 * 1024)],
      ["post", "notes.txt", Buffer.from("form upload\n".repeat(20000))],
      ["large", "big.bin", randomBytes(50 * 1024 * 1024)],
    ];
    let sessionPuts = 0;
    page.on("request", (r) => r.method() === "PUT" && r.url().includes("upload_id=") && sessionPuts++);
    for (const [mode, name, bytes] of cases) await uploaded(mode, name, bytes);
    check(sessionPuts === 7, `large: 50 MiB went up as a resumable session in ${sessionPuts} chunks of at most 8 MiB (7 expected)`);
    await page.waitForFunction(() => document.querySelector("#preview").dataset.loaded === "browser/put/photo.png", null, { timeout: 15000 });
    check(await page.evaluate(() => document.querySelector("#preview").naturalWidth === 1024), "the uploaded image shows through a signed GET URL");
    await page.screenshot({ path: screenshot, fullPage: true });

    // What a user gets wrong, and what the page says.
    let result = await upload("put", "tool.exe", Buffer.from("MZ not an image"));
    check(result.kind === "error" && /not allowed/.test(result.text), `a forbidden content type: "${result.text}"`);
    result = await upload("put", "huge.bin", Buffer.alloc(65 * 1024 * 1024));
    check(result.kind === "error" && /too large/.test(result.text), `a file above the bucket's limit: "${result.text}"`);
    // Storage's own refusals, answered here as GCS answers them (the emulator checks neither).
    const gcsError = (code, details) => refuse(400, code, `<Message>Invalid argument.</Message><Details>${details}</Details>`);
    await page.route(/\/storage-broker-data\//, gcsError("ExpiredToken", "The provided token has expired."));
    result = await upload("put", "late.png", png(64 * 1024));
    check(result.kind === "error" && /expired/.test(result.text), `an expired URL: "${result.text}"`);
    await page.unroute(/\/storage-broker-data\//);
    await page.route(/\/storage-broker-data\//, gcsError("EntityTooLarge", "Your proposed upload is larger than the maximum object size specified in your Policy Document (content-length-range)."));
    result = await upload("put", "grown.png", png(64 * 1024));
    check(result.kind === "error" && /larger than this upload link allows/.test(result.text), `refused by content-length-range: "${result.text}"`);
  } else {
    // The storage requests of a large upload: S3 part PUTs (partNumber=) and its completion
    // (POST uploadId=); Azure Put Block (comp=block&) and Put Block List (comp=blocklist).
    const seen = { chunks: [], completions: 0 };
    page.on("requestfinished", (r) => {
      const url = r.url();
      // The length as sent (Chromium reports no body size for a file's slice).
      if (r.method() === "PUT" && /[?&](partNumber=|comp=block&)/.test(url)) seen.chunks.push(r.allHeaders().then((h) => Number(h["content-length"])));
      if ((r.method() === "POST" && /[?&]uploadId=/.test(url)) || (r.method() === "PUT" && /[?&]comp=blocklist/.test(url))) seen.completions++;
    });
    const photo = await uploaded("put", "photo.png", png(5 * 1024 * 1024), "image/png");
    const big = 20 * 1024 * 1024;
    await uploaded("large", "big.bin", randomBytes(big), "application/octet-stream");
    // S3 parts are the size the broker fixes for the class (5 MiB here), Azure blocks 8 MiB.
    const how = backend === "s3" ? "a multipart upload" : "blocks and a block list";
    const chunks = await Promise.all(seen.chunks);
    const chunked = chunks.length >= 3 && chunks.every((n) => n <= 8 * 1024 * 1024) && chunks.reduce((a, n) => a + n, 0) === big;
    check(chunked && seen.completions === 1, `large: 20 MiB went up as ${how}: ${chunks.length} chunks of at most 8 MiB (${chunks.join(" + ")} bytes) and ${seen.completions} completion`);
    await page.waitForFunction(() => document.querySelector("#preview").dataset.loaded === "browser/put/photo.png", null, { timeout: 30000 });
    check(await page.evaluate(() => document.querySelector("#preview").naturalWidth === 1024), "the uploaded image shows through a signed GET URL");
    // Both in the listing at once (each was checked right after its upload).
    const listed = await page.$$eval("#objects li", (items) => items.map((li) => li.dataset.name));
    check(["browser/put/photo.png", "browser/large/big.bin"].every((o) => listed.includes(o)), `the listing shows both uploads: ${listed.join(", ")}`);

    if (backend === "s3") {
      await uploaded("post", "notes.txt", Buffer.from("form upload\n".repeat(20000)), "text/plain");
    } else {
      const result = await upload("post", "notes.txt", Buffer.from("form upload\n"));
      check(result.kind === "error" && /takes no form uploads/.test(result.text), `a form upload on Azure: "${result.text}"`);
    }
    await page.screenshot({ path: screenshot, fullPage: true });

    // Storage's own refusal, through its CORS rule: the link's signature tampered with.
    const storage = new URL(photo.url).origin;
    const signature = backend === "s3" ? /([?&]X-Amz-Signature=)(.)/ : /([?&]sig=)(.)/;
    const tamper = (url) => url.replace(signature, (_, name, c) => name + (c === "a" ? "b" : "a"));
    const mine = (url) => url.origin === storage;
    await page.route(mine, (route) => route.continue({ url: tamper(route.request().url()) }));
    let result = await upload("put", "tampered.png", png(64 * 1024));
    check(result.kind === "error" && /Storage refused the upload link/.test(result.text), `a tampered link, refused by ${backend === "s3" ? "SeaweedFS" : "Azurite"}: "${result.text}"`);
    await page.unroute(mine);
    if (backend === "s3") {
      // A link that really expires: the page's sign request asks for 2 s, and its PUT is held
      // until that has passed (a deadline from the link itself, not a guess); SeaweedFS then
      // answers as S3 does, AccessDenied "Request has expired".
      const asked = (route) => route.continue({ postData: JSON.stringify({ ...JSON.parse(route.request().postData()), expires_in: 2 }) });
      let held = 0;
      const late = async (route) => {
        const url = new URL(route.request().url());
        const signedAt = Date.parse(url.searchParams.get("X-Amz-Date").replace(/^(....)(..)(..)T(..)(..)(..)Z$/, "$1-$2-$3T$4:$5:$6Z"));
        const expiry = signedAt + 1000 * Number(url.searchParams.get("X-Amz-Expires"));
        held++;
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiry + 1500 - Date.now())));
        await route.continue();
      };
      await page.route(`${broker}/v1/sign`, asked);
      await page.route(mine, late);
      result = await upload("put", "expired.png", png(64 * 1024));
      check(held === 1 && result.kind === "error" && /expired/.test(result.text), `a link that expired before storage got it, refused by SeaweedFS: "${result.text}"`);
      await page.unroute(mine);
      await page.unroute(`${broker}/v1/sign`);
      // A part storage refuses mid-way (its link tampered with): the page aborts the multipart
      // upload, a DELETE that the bucket's CORS rule must allow, and says why.
      const partTwo = (url) => url.origin === storage && url.searchParams.get("partNumber") === "2";
      const abort = page.waitForEvent("requestfinished", { predicate: (r) => r.method() === "DELETE" && /[?&]uploadId=/.test(r.url()), timeout: 60000 });
      await page.route(partTwo, (route) => route.continue({ url: tamper(route.request().url()) }));
      result = await upload("large", "broken.bin", randomBytes(12 * 1024 * 1024));
      await page.unroute(partTwo);
      const aborted = await abort.then((r) => r.response()).then((r) => r.status(), () => "no DELETE");
      check(result.kind === "error" && /Storage refused the upload link/.test(result.text) && aborted === 204, `a part refused mid-way: the upload aborted (${aborted}) — "${result.text}"`);
    }
    // What the clouds answer that the emulators do not (Azurite answers an expired SAS with
    // AuthorizationFailure and no word of its expiry, S3 an old link's clock as skewed, and an
    // Azure SAS binds no size), answered here as the clouds answer them.
    const expired = backend === "s3"
      ? refuse(403, "AccessDenied", "<Message>Request has expired</Message><X-Amz-Expires>900</X-Amz-Expires>")
      : refuse(403, "AuthenticationFailed", "<Message>Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.</Message><AuthenticationErrorDetail>Signed expiry time [Tue, 24 Nov 2026 10:00:00 GMT] has to be after current time [Tue, 24 Nov 2026 10:05:00 GMT]</AuthenticationErrorDetail>");
    await page.route(mine, expired);
    result = await upload("put", "late.png", png(64 * 1024));
    check(result.kind === "error" && /expired/.test(result.text), `an expired URL: "${result.text}"`);
    await page.unroute(mine);
    const skewed = backend === "s3"
      ? refuse(403, "RequestTimeTooSkewed", "<Message>The difference between the request time and the server's time is too large.</Message>")
      : null;
    if (skewed) {
      await page.route(mine, skewed);
      result = await upload("put", "skewed.png", png(64 * 1024));
      check(result.kind === "error" && /expired/.test(result.text), `a link from a skewed clock: "${result.text}"`);
      await page.unroute(mine);
    }
    const large = backend === "s3"
      ? refuse(400, "EntityTooLarge", "<Message>Your proposed upload exceeds the maximum allowed size</Message>")
      : refuse(413, "RequestBodyTooLarge", "<Message>The request body is too large and exceeds the maximum permissible limit.</Message>");
    await page.route(mine, large);
    result = await upload("put", "grown.png", png(64 * 1024));
    check(result.kind === "error" && /larger than this upload link allows/.test(result.text), `refused as too large: "${result.text}"`);
    await page.unroute(mine);
    // The broker's own refusals hold whatever the backend (on Azure as advice it checks).
    result = await upload("put", "tool.exe", Buffer.from("MZ not an image"));
    check(result.kind === "error" && /not allowed/.test(result.text), `a forbidden content type: "${result.text}"`);
    result = await upload("put", "huge.bin", Buffer.alloc(65 * 1024 * 1024));
    check(result.kind === "error" && /too large/.test(result.text), `a file above the bucket's limit: "${result.text}"`);
  }
  rmSync(files, { recursive: true, force: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`e2e-browser (${backend}): ${failures.length} failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log(`e2e-browser (${backend}): all held; screenshot ${screenshot}`);

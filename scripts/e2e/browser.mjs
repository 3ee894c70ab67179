// Drives examples/browser-upload in headless Chromium as a person would: sign in, upload a 5 MiB
// image by signed PUT, a file by the POST-policy form and a 50 MiB file by resumable upload,
// each downloaded again through a signed GET and compared byte for byte; then the mistakes a
// user makes must show a clear message. Saves a screenshot. Exit 0 only when all of it held.
//   node browser.mjs PAGE_URL BROKER_URL SCREENSHOT
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, crc32 } from "node:zlib";
import { createRequire } from "node:module";

// playwright-core lives where scripts/e2e-browser.sh installed it (E2E_TOOLS).
const { chromium } = createRequire(`${process.env.E2E_TOOLS}/`)("playwright-core");

const [pageUrl, broker, screenshot] = process.argv.slice(2);
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

async function download(token, bucket, object) {
  const signed = await fetch(`${broker}/v1/sign`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ bucket, object, method: "GET" }),
  }).then((r) => r.json());
  const response = await fetch(signed.url);
  return Buffer.from(await response.arrayBuffer());
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  page.on("pageerror", (e) => failures.push(`page error: ${e}`));
  await page.goto(`${pageUrl}?broker=${encodeURIComponent(broker)}`);
  await page.click("#signin");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("Signed in"), null, { timeout: 15000 });
  const bucket = (await page.textContent("#who")).split("bucket ")[1];
  const token = (await fetch(`${broker}/dev/token?sub=alice`).then((r) => r.json())).access_token;

  // Files go through disk: Playwright hands the browser buffers only up to 50 MB.
  const files = mkdtempSync(join(tmpdir(), "e2e-browser-"));
  // The browser types each file from its name, as it would for a person's file.
  async function upload(mode, name, buffer) {
    await page.check(`input[name=mode][value=${mode}]`);
    const path = join(files, name);
    writeFileSync(path, buffer);
    await page.setInputFiles("#file", path);

    await page.click("#upload");
    await page.waitForFunction(() => ["done", "error"].includes(document.querySelector("#status").className), null, { timeout: 120000 });
    return { kind: await page.getAttribute("#status", "class"), text: await page.textContent("#status") };
  }

  const cases = [
    ["put", "photo.png", png(5 * 1024 * 1024)],
    ["post", "notes.txt", Buffer.from("form upload\n".repeat(20000))],
    ["resumable", "big.bin", randomBytes(50 * 1024 * 1024)],
  ];
  let sessionPuts = 0;
  page.on("request", (r) => r.method() === "PUT" && r.url().includes("upload_id=") && sessionPuts++);
  for (const [mode, name, bytes] of cases) {
    const started = Date.now();
    const result = await upload(mode, name, bytes);
    check(result.kind === "done", `${mode}: ${name} (${bytes.length} bytes) uploaded in ${Date.now() - started} ms — "${result.text}"`);
    check((await page.getAttribute("#progress", "value")) === "100", `${mode}: the progress bar reached 100%`);
    const object = `browser/${mode}/${name}`;
    check(await page.isVisible(`#objects li[data-name="${object}"]`), `${mode}: the listing shows ${object}`);
    const back = await download(token, bucket, object);
    check(sha(back) === sha(bytes), `${mode}: the bytes downloaded through a signed GET are the bytes uploaded`);
  }
  check(sessionPuts === 7, `resumable: 50 MiB went up in ${sessionPuts} chunks of at most 8 MiB (7 expected)`);
  await page.waitForFunction(() => document.querySelector("#preview").dataset.loaded === "browser/put/photo.png", null, { timeout: 15000 });
  check(await page.evaluate(() => document.querySelector("#preview").naturalWidth === 1024), "the uploaded image shows through a signed GET URL");
  await page.screenshot({ path: screenshot, fullPage: true });

  // What a user gets wrong, and what the page says.
  let result = await upload("put", "tool.exe", Buffer.from("MZ not an image"));
  check(result.kind === "error" && /not allowed/.test(result.text), `a forbidden content type: "${result.text}"`);
  result = await upload("put", "huge.bin", Buffer.alloc(65 * 1024 * 1024));
  check(result.kind === "error" && /too large/.test(result.text), `a file above the bucket's limit: "${result.text}"`);
  // Storage's own refusals, answered here as GCS answers them (the emulator checks neither).
  const refuse = (code, details) => (route) =>
    route.fulfill({
      status: 400,
      headers: { "Content-Type": "application/xml", "Access-Control-Allow-Origin": "*" },
      body: `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>Invalid argument.</Message><Details>${details}</Details></Error>`,
    });
  await page.route(/\/storage-broker-data\//, refuse("ExpiredToken", "The provided token has expired."));
  result = await upload("put", "late.png", png(64 * 1024));
  check(result.kind === "error" && /expired/.test(result.text), `an expired URL: "${result.text}"`);
  await page.unroute(/\/storage-broker-data\//);
  await page.route(/\/storage-broker-data\//, refuse("EntityTooLarge", "Your proposed upload is larger than the maximum object size specified in your Policy Document (content-length-range)."));
  result = await upload("put", "grown.png", png(64 * 1024));
  check(result.kind === "error" && /larger than this upload link allows/.test(result.text), `refused by content-length-range: "${result.text}"`);
  rmSync(files, { recursive: true, force: true });
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`e2e-browser: ${failures.length} failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log(`e2e-browser: all held; screenshot ${screenshot}`);

// The read reuse window as a browser sees it: a gallery page, rendered by a backend that asks
// the broker for a signed GET each time, shown twice in two navigations within the window. The
// second navigation gets the same URL, so Chromium serves the image from its cache: storage sees
// one request, not two, when the object carries a Cache-Control that allows it. The control: an
// object stored with `Cache-Control: no-store` is fetched on every navigation. Storage requests
// are counted by scripts/e2e/counting_proxy.py, which the broker signs for.
//   node cache.mjs BROKER_URL PROXY_URL
import { createServer } from "node:http";
import { createRequire } from "node:module";

const { chromium } = createRequire(`${process.env.E2E_TOOLS}/`)("playwright-core");
const [broker, proxy] = process.argv.slice(2);
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};

const token = (await fetch(`${broker}/dev/token?sub=alice`).then((r) => r.json())).access_token;
const me = await fetch(`${broker}/v1/me`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
const bucket = me.personal_bucket?.name ?? me.personal_bucket;
const sign = (body) =>
  fetch(`${broker}/v1/sign`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ bucket, ...body }),
  }).then(async (r) => {
    const answer = await r.json();
    if (!r.ok) throw new Error(`sign: ${r.status} ${JSON.stringify(answer)}`);
    return answer;
  });

// A 1x1 PNG, stored twice: cacheable for an hour, and not to be stored at all.
const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==", "base64");
for (const [object, cacheControl] of [["gallery/cached.png", "private, max-age=3600"], ["gallery/no-store.png", "no-store"]]) {
  const put = await sign({ object, method: "PUT", content_type: "image/png", size: png.length });
  const stored = await fetch(put.url, { method: "PUT", headers: { ...put.headers, "Cache-Control": cacheControl }, body: png });
  check(stored.ok, `stored ${object} with Cache-Control: ${cacheControl} (${stored.status})`);
}

// The backend of the gallery: each page view asks the broker for the image's URL.
const signedUrls = [];
const gallery = createServer(async (request, response) => {
  const object = new URL(request.url, "http://x").searchParams.get("object");
  if (!object) {
    response.writeHead(404).end(); // the browser's favicon.ico
    return;
  }
  const answer = await sign({ object, method: "GET", expires_in: 900 });
  signedUrls.push(answer.url);
  response.writeHead(200, { "Content-Type": "text/html", "Cache-Control": "no-store" });
  response.end(`<!doctype html><title>gallery</title><img id="photo" alt="photo" src="${answer.url.replaceAll("&", "&amp;").replaceAll('"', "&quot;")}">`);
});
await new Promise((resolve) => gallery.listen(0, "127.0.0.1", resolve));
const galleryUrl = `http://127.0.0.1:${gallery.address().port}/gallery`;

const reads = async (object) => {
  const path = new URL((await sign({ object, method: "GET", expires_in: 900 })).url).pathname;
  return (await fetch(`${proxy}/__count?path=${encodeURIComponent(path)}`).then((r) => r.json())).reads;
};

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  for (const [object, expected] of [["gallery/cached.png", 1], ["gallery/no-store.png", 2]]) {
    signedUrls.length = 0;
    // Both views in one window (60 s by default; the URL's signing time is its start): when
    // less than 15 s of it is left, wait for the next one.
    const first = await sign({ object, method: "GET", expires_in: 900 });
    const into = Date.now() - (Date.parse(first.expires_at) - 900_000);
    if (into > 45_000) await new Promise((resolve) => setTimeout(resolve, 61_000 - into));
    for (const visit of [1, 2]) {
      // A new navigation each time, to another page first so that nothing of the last one stays.
      await page.goto("about:blank");
      await page.goto(`${galleryUrl}?object=${encodeURIComponent(object)}&visit=${visit}`);
      await page.waitForFunction(() => document.querySelector("#photo").complete && document.querySelector("#photo").naturalWidth === 1, null, { timeout: 15000 });
    }
    check(signedUrls.length === 2 && signedUrls[0] === signedUrls[1], `${object}: both page views got the same signed URL`);
    const seen = await reads(object);
    check(seen === expected, `${object}: storage saw ${seen} GET(s) for two page views (expected ${expected})`);
  }
} finally {
  await browser.close();
  gallery.close();
}
if (failures.length) {
  console.error(`cache: ${failures.length} failed`);
  process.exit(1);
}

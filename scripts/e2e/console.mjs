// The console as a person uses it, in headless Chromium against `storage-broker dev`:
// alice signs in (by keyboard), uploads three files by drag and drop (one of 50 MiB) into a
// folder, browses into it, creates a project and adds bob as editor, shares the folder with carol
// until tomorrow; carol signs in and sees only that folder; alice revokes it; carol is refused;
// alice finds carol's reads and the refusal on the audit page. axe-core checks every page (no
// serious or critical violation), the pages hold at 360 px and in dark mode, and the strict CSP
// is never violated. Screenshots of each page go to $2 (target/e2e/console/).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(`${process.env.E2E_TOOLS}/`);
const { chromium } = require("playwright-core");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const [broker, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};
const BIG = 50 * 1024 * 1024;
/** The 50 MiB file's bytes, made the same way in the page. */
function pattern(n) {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + (i >> 12)) & 255;
  return bytes;
}
const sha = (b) => createHash("sha256").update(b).digest("hex");

async function api(sub, path) {
  const { access_token: token } = await fetch(`${broker}/dev/token?sub=${sub}`).then((r) => r.json());
  return fetch(`${broker}${path}`, { headers: { Authorization: `Bearer ${token}` } });
}
async function downloadAs(sub, bucket, object) {
  const { access_token: token } = await fetch(`${broker}/dev/token?sub=${sub}`).then((r) => r.json());
  const signed = await fetch(`${broker}/v1/sign`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ bucket, object, method: "GET" }),
  }).then((r) => r.json());
  return Buffer.from(await (await fetch(signed.url)).arrayBuffer());
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const violations = [];
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => failures.push(`page error: ${e}`));
  page.on("console", (m) => /Content Security Policy/.test(m.text()) && violations.push(m.text()));
  page.on("console", (m) => /Refused to get unsafe header/.test(m.text()) && failures.push(`the client read a header CORS hides: ${m.text()}`));

  const heading = () => page.textContent("h1");
  async function axe(what) {
    await page.evaluate(axeSource);
    const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
    const bad = result.violations.filter((v) => ["serious", "critical"].includes(v.impact));
    check(bad.length === 0, `${what}: axe-core finds no serious or critical violation${bad.length ? ` (${bad.map((v) => `${v.id}: ${v.nodes.length}`).join(", ")})` : ""}`);
  }
  async function shot(name) {
    await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
  async function signIn(user, byKeyboard = false) {
    await page.goto(`${broker}/console/`);
    await page.waitForSelector("input[name=user]");
    if (byKeyboard) {
      await page.focus("input[name=user]");
      await page.keyboard.press("Control+A");
      await page.keyboard.type(user);
      await page.keyboard.press("Enter");
    } else {
      await page.fill("input[name=user]", user);
      await page.click("button[type=submit]");
    }
    await page.waitForFunction(() => document.querySelector("h1")?.textContent === "Buckets");
    check((await page.textContent("#who")) === user, `${user} signs in${byKeyboard ? " with the keyboard alone" : ""}`);
  }
  async function signOut() {
    await page.click("#signout");
    await page.waitForSelector("input[name=user]");
  }
  async function status() {
    return (await page.textContent("#status")).trim();
  }
  const waitStatus = (pattern) => page.waitForFunction((p) => new RegExp(p).test(document.querySelector("#status").textContent), pattern.source, { timeout: 30000 });

  // -- alice: sign in, her buckets
  await signIn("alice", true);
  await page.waitForSelector("text=u-alice");
  check(await page.isVisible("a[href='#/b/u-alice']"), "the buckets page lists alice's personal bucket");
  const token = await page.evaluate(() => Object.keys(localStorage).length + Object.keys(sessionStorage).length + document.cookie.length);
  check(token === 0, "no token in localStorage, sessionStorage or a script-readable cookie");
  await axe("buckets");
  await shot("buckets");

  // -- a file at the top, then three files dropped into a new folder
  await page.click("a[href='#/b/u-alice']");
  await page.waitForSelector("#drop");
  await page.setInputFiles("#files", { name: "private.txt", mimeType: "text/plain", buffer: Buffer.from("alice only\n") });
  await page.waitForSelector("tr[data-name='private.txt']");
  await page.fill("input[name=folder]", "reports");
  await page.click("text=Open new folder");
  await page.waitForFunction(() => (document.querySelector("h1")?.textContent ?? "").startsWith("u-alice / reports/"));
  const started = Date.now();
  await page.evaluate((big) => {
    const transfer = new DataTransfer();
    const bytes = new Uint8Array(big);
    for (let i = 0; i < big; i++) bytes[i] = (i * 31 + (i >> 12)) & 255;
    transfer.items.add(new File([bytes], "big.bin", { type: "application/octet-stream" }));
    transfer.items.add(new File(["quarterly figures\n"], "notes.txt", { type: "text/plain" }));
    transfer.items.add(new File([Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0))], "dot.png", { type: "image/png" }));
    const drop = document.getElementById("drop");
    for (const type of ["dragenter", "dragover", "drop"]) drop.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, BIG);
  await page.waitForFunction(() => document.querySelectorAll(".uploads li[data-done]").length === 3, null, { timeout: 180000 });
  const done = await page.$$eval(".uploads li", (items) => items.map((li) => [li.dataset.object, li.dataset.done, li.querySelector("progress").value]));
  check(done.length === 3 && done.every(([, state, value]) => state === "true" && value === 100), `three files dropped, each with its own progress bar at 100% in ${Date.now() - started} ms: ${JSON.stringify(done)}`);
  check(sha(await downloadAs("alice", "u-alice", "reports/big.bin")) === sha(pattern(BIG)), "the 50 MiB file in storage is the bytes dropped");
  await page.waitForSelector("tr[data-name='reports/big.bin']");
  await shot("upload");

  // -- cancel an upload in flight: storage is held until the cancel, then the request dies
  const storageOrigin = new URL(await (async () => {
    const { access_token: t } = await fetch(`${broker}/dev/token?sub=alice`).then((r) => r.json());
    return (await fetch(`${broker}/v1/sign`, { method: "POST", headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" }, body: JSON.stringify({ bucket: "u-alice", object: "x", method: "GET" }) }).then((r) => r.json())).url;
  })()).origin;
  let held;
  const reached = new Promise((resolve) => (held = resolve));
  const holdCancel = (route) => { held(); /* never continued: the cancel aborts it */ };
  await page.route((url) => url.origin === storageOrigin && url.pathname.includes("cancel.bin"), holdCancel);
  await page.setInputFiles("#files", { name: "cancel.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(1024 * 1024, 7) });
  await reached;
  await page.click("text=Cancel cancel.bin");
  await page.waitForSelector(".uploads li[data-done='cancelled']");
  await page.unroute((url) => url.origin === storageOrigin && url.pathname.includes("cancel.bin"), holdCancel);
  check((await page.textContent(".uploads li[data-done='cancelled']")).includes("cancelled") && !(await page.isVisible("tr[data-name='reports/cancel.bin']")), "an upload cancelled mid-way says so and stores nothing");

  // -- browse: the top shows the folder, the folder its files
  await page.click(".crumbs a >> text=u-alice");
  await page.waitForSelector("tr[data-name='reports/']");
  check(await page.isVisible("tr[data-name='private.txt']"), "the top of the bucket shows private.txt and the folder reports/");
  await page.fill("#filter", "priv");
  check(!(await page.isVisible("tr[data-name='reports/']")) && (await page.isVisible("tr[data-name='private.txt']")), "the filter hides what does not match");
  await page.fill("#filter", "");
  await page.click("tr[data-name='reports/'] a");
  await page.waitForSelector("tr[data-name='reports/notes.txt']");
  const listed = await page.$$eval("tbody tr[data-name]", (rows) => rows.map((r) => r.dataset.name));
  check(["reports/big.bin", "reports/dot.png", "reports/notes.txt"].every((n) => listed.includes(n)), `browsing into reports/ shows its three files: ${listed.join(", ")}`);
  check((await page.textContent("tr[data-name='reports/big.bin']")).includes("50.0 MiB"), "sizes are shown");
  await axe("object browser");
  await shot("browser");

  // -- delete, after a confirmation (cancelled once)
  await page.click(".crumbs a >> text=u-alice");
  await page.waitForSelector("tr[data-name='private.txt']");
  await page.click("button[aria-label='Delete private.txt']");
  await page.click("dialog button.secondary");
  check(await page.isVisible("tr[data-name='private.txt']"), "cancelling the confirmation deletes nothing");
  await page.setInputFiles("#files", { name: "scratch.txt", mimeType: "text/plain", buffer: Buffer.from("delete me\n") });
  await page.waitForSelector("tr[data-name='scratch.txt']");
  await page.click("button[aria-label='Delete scratch.txt']");
  await page.click("dialog button.danger");
  await waitStatus(/Deleted scratch.txt/);
  check(!(await page.isVisible("tr[data-name='scratch.txt']")), "a confirmed delete removes the object");

  // -- a project, and bob in it as editor
  await page.click("nav[aria-label=Main] >> text=Projects");
  await page.waitForSelector("#project-form");
  await page.fill("#project-slug", "vision");
  await page.fill("#project-name", "Vision");
  await page.click("text=Create project and its bucket");
  await page.waitForFunction(() => document.querySelector("h1")?.textContent === "Project vision");
  await page.fill("#member-who", "bob");
  await page.selectOption("#member-role", "editor");
  await page.click("text=Add member");
  await page.waitForSelector("tr[data-member='user:bob']");
  check((await page.$eval("tr[data-member='user:bob'] select", (s) => s.value)) === "editor", "bob is in project vision as editor");
  check((await page.$$("tr[data-member]")).length === 2, "the project has alice (owner) and bob");
  // The last owner stays: alice may not make herself a viewer.
  await page.selectOption("tr[data-member='user:alice'] select", "viewer");
  await waitStatus(/at least one owner/);
  await page.waitForFunction(() => document.querySelector("tr[data-member='user:alice'] select")?.value === "owner");
  const kept = await (await api("alice", "/v1/projects/vision")).json();
  check(kept.members.find((m) => m.member === "user:alice")?.role === "owner" && /at least one owner/.test(await status()), `the last owner stays, in a sentence: "${await status()}"`);
  await axe("project");
  await shot("project");
  const projectBucket = await api("bob", "/v1/buckets/p-vision");
  check(projectBucket.status === 200, `bob sees the project's bucket p-vision (${projectBucket.status})`);

  // -- share reports/ with carol until tomorrow
  await page.goto(`${broker}/console/#/share/u-alice`);
  await page.waitForSelector("#share-form");
  await page.fill("#share-path", "reports/");
  await page.selectOption("#share-kind", "user");
  await page.fill("#share-who", "carol");
  await page.selectOption("#share-role", "viewer");
  const tomorrow = new Date(Date.now() + 24 * 3600 * 1000);
  const local = new Date(tomorrow.getTime() - tomorrow.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  await page.fill("#share-until", local);
  await page.click("#share-form button[type=submit]");
  await page.waitForSelector("tr[data-principal='user:carol']");
  const grant = await page.textContent("tr[data-principal='user:carol']");
  check(/objects under reports\//.test(grant) && /viewer/.test(grant) && !/no end/.test(grant), `reports/ is shared with carol as viewer until tomorrow: ${grant.replace(/\s+/g, " ")}`);
  await axe("sharing");
  await shot("share");

  // -- carol sees only that folder
  await signOut();
  await signIn("carol");
  await page.waitForSelector("a[href='#/b/u-alice']");
  await shot("carol-buckets");
  await page.click("a[href='#/b/u-alice']");
  await page.waitForSelector("tr[data-name='reports/']");
  check(!(await page.isVisible("tr[data-name='private.txt']")), "carol does not see alice's private.txt");
  check(!(await page.isVisible("#drop")), "carol, a viewer, gets no upload area");
  await page.click("tr[data-name='reports/'] a");
  await page.waitForSelector("tr[data-name='reports/notes.txt']");
  const popup = page.waitForEvent("popup");
  await page.click("button[aria-label='Open reports/notes.txt']");
  const opened = await popup;
  await opened.waitForLoadState();
  check((await opened.textContent("body")).includes("quarterly figures"), "carol opens reports/notes.txt through a signed URL");
  await opened.close();
  await shot("carol-browser");

  // -- alice revokes; carol is refused
  await signOut();
  await signIn("alice");
  await page.goto(`${broker}/console/#/share/u-alice`);
  await page.waitForSelector("tr[data-principal='user:carol']");
  await page.click("tr[data-principal='user:carol'] button");
  await page.click("dialog button.danger");
  await waitStatus(/Revoked user:carol/);
  check(!(await page.isVisible("tr[data-principal='user:carol']")), "alice revokes carol's share");
  await signOut();
  await signIn("carol");
  check(!(await page.isVisible("a[href='#/b/u-alice']")), "carol's buckets no longer show u-alice");
  await page.goto(`${broker}/console/#/b/u-alice/reports`);
  await page.waitForFunction(() => document.querySelector("h1")?.textContent === "Something is wrong");
  const refusal = await page.textContent("main");
  check(/no such bucket, or you may not see it/.test(refusal), `carol, opening the folder again, is refused in a sentence: "${refusal.replace(/\s+/g, " ").trim()}"`);
  await shot("carol-refused");

  // -- alice finds carol's reads and the refusal
  await signOut();
  await signIn("alice");
  await page.goto(`${broker}/console/#/audit/u-alice`);
  await page.waitForSelector("#audit-form");
  await page.fill("#audit-subject", "carol");
  await page.click("#audit-form button[type=submit]");
  // The filtered page has replaced the unfiltered one: every row is carol's.
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tbody tr[data-subject]")];
    return rows.length > 0 && rows.every((tr) => tr.dataset.subject === "carol");
  });
  const rows = await page.$$eval("tbody tr[data-subject]", (trs) => trs.map((tr) => ({ decision: tr.dataset.decision, text: tr.textContent })));
  check(rows.some((r) => r.decision === "allow" && /GET/.test(r.text) && /reports\/notes\.txt/.test(r.text)), "the audit shows carol reading reports/notes.txt");
  check(rows.some((r) => r.decision === "allow" && /LIST/.test(r.text)), "the audit shows carol listing");
  check(rows.some((r) => r.decision !== "allow"), `the audit shows carol refused (${rows.filter((r) => r.decision !== "allow").length} refusal(s))`);
  const download = page.waitForEvent("download");
  await page.click("text=Export as NDJSON");
  const exported = readFileSync(await (await download).path(), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  check(exported.length === rows.length && exported.every((e) => e.subject === "carol"), `the NDJSON export holds the same ${exported.length} rows (the page shows ${rows.length}; subjects ${[...new Set(exported.map((e) => e.subject))]})`);
  await axe("audit");
  await shot("audit");

  // -- narrow and dark
  await page.setViewportSize({ width: 360, height: 800 });
  for (const [name, hash] of [["buckets", "#/"], ["browser", "#/b/u-alice/reports"], ["share", "#/share/u-alice"], ["audit", "#/audit/u-alice"]]) {
    await page.goto(`${broker}/console/${hash}`);
    await page.waitForSelector("main h1");
    await page.waitForTimeout(300);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 361, `${name} fits 360 px (${wide} px wide)`);
    if (name === "buckets") await shot("buckets-360");
  }
  await page.setViewportSize({ width: 1200, height: 900 });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.goto(`${broker}/console/#/b/u-alice/reports`);
  await page.waitForSelector("tr[data-name='reports/notes.txt']");
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(background !== "rgb(255, 255, 255)", `dark mode follows the system setting (background ${background})`);
  await axe("object browser, dark");
  await shot("browser-dark");
  check(violations.length === 0, `the Content-Security-Policy was never violated${violations.length ? `: ${violations[0]}` : ""}`);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`console e2e: ${failures.length} check(s) failed`);
  process.exit(1);
}
console.log(`console e2e: all held; screenshots in ${shots}`);

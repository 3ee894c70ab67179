// The console: who is signed in (the token lives in this module's memory only: never in
// localStorage, sessionStorage or a cookie a script can read), and which page the address shows.
import { createClient } from "./client/index.js";
import { h, say, sentence, field } from "./ui.js";
import * as pages from "./pages.js";

const main = document.getElementById("main");
const session = { client: null, me: null };

/** `#/b/BUCKET/PREFIX…` and the like, decoded segment by segment. */
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  return { page: parts[0] || "buckets", args: parts.slice(1) };
}

export function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  if (!session.client) return signInPage();
  const { page, args } = route();
  const ctx = { client: session.client, me: session.me, main, go };
  main.replaceChildren(h("p", {}, "Loading…"));
  try {
    switch (page) {
      case "b": await pages.browser(ctx, args[0], args.slice(1).join("/")); break;
      case "share": await pages.share(ctx, args[0], args.slice(1).join("/")); break;
      case "audit": await pages.audit(ctx, args[0] || null); break;
      case "projects": await pages.projects(ctx); break;
      case "p": await pages.project(ctx, args[0]); break;
      default: await pages.buckets(ctx);
    }
  } catch (e) {
    if (e?.code === "unauthorized") return signOut("Your session has ended. Sign in again.");
    main.replaceChildren(h("h1", {}, "Something is wrong"), h("p", { class: "status" }, h("span", { class: "error" }, sentence(e))), h("p", {}, h("a", { href: "#/" }, "Back to your buckets")));
  }
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent : "Storage"} — Storage console`;
  main.focus();
}

async function signedIn(client) {
  session.client = client;
  session.me = await client.me();
  document.getElementById("who").textContent = session.me.username || session.me.subject;
  document.getElementById("signout").hidden = false;
  document.getElementById("nav-audit").hidden = !session.me.roles.includes("storage-admin");
  say("");
  await render();
}

function signOut(message = "Signed out.") {
  session.client = null;
  session.me = null;
  document.getElementById("who").textContent = "";
  document.getElementById("signout").hidden = true;
  document.getElementById("nav-audit").hidden = true;
  say(message);
  signInPage();
}

/** Under `storage-broker dev`: sign in as anyone through the dev issuer. Elsewhere the gatekeeper signs people in. */
async function signInPage() {
  const dev = await fetch("/dev/token", { method: "GET" }).then((r) => r.status !== 404, () => false);
  if (!dev) {
    main.replaceChildren(h("h1", {}, "Sign in"), h("p", {}, "Sign in through your organisation's sign-in page, then reload this page."));
    return main.focus();
  }
  const form = h("form", { class: "row", "aria-labelledby": "signin-title" },
    field("User", { name: "user", required: true, autocomplete: "username", value: "alice" }),
    field("Groups (comma-separated, optional)", { name: "groups", placeholder: "/vision" }),
    field("Roles (optional)", { name: "roles", placeholder: "storage-admin" }),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams({ sub: String(data.get("user")).trim() });
    for (const name of ["groups", "roles"]) if (String(data.get(name)).trim()) query.set(name, String(data.get(name)).trim());
    const answer = await fetch(`/dev/token?${query}`).catch(() => null);
    if (!answer?.ok) return say("The dev issuer gave no token.", "error");
    const { access_token: token } = await answer.json();
    await signedIn(createClient({ baseUrl: "", token })).catch((e) => say(sentence(e), "error"));
  });
  main.replaceChildren(h("h1", { id: "signin-title" }, "Sign in (development)"),
    h("p", { class: "muted" }, "storage-broker dev signs anyone in: pick a user."), form);
  main.focus();
}

document.getElementById("signout").addEventListener("click", () => signOut());
window.addEventListener("hashchange", render);

// Behind a gatekeeper the proxy adds the token to every request: no token here at all.
const proxied = createClient({ baseUrl: "" });
proxied.me().then(() => signedIn(proxied), () => signInPage());

// The console's pages. Each renders into `ctx.main` from what the API answers; every failure
// becomes a sentence (ui.js). Uploads go straight to storage through clients/js.
import { h, say, sentence, attempt, ask, bytes, when, field, select, fill } from "./ui.js";

const enc = encodeURIComponent;
const ROLES = [["viewer", "viewer (read)"], ["editor", "editor (read, write, delete)"], ["owner", "owner (everything, and sharing)"]];

/** `#/b/BUCKET/PREFIX` with each part encoded. */
const href = (page, bucket, prefix = "") => `#/${page}/${enc(bucket)}${prefix ? "/" + prefix.split("/").map(enc).join("/") : ""}`;

function tabs(bucket, current, view) {
  const items = [["b", "Objects"], ["share", "Sharing"], ["audit", "Audit"]].filter(([page]) =>
    page === "b" || (page === "share" && view?.actions.includes("share")) || (page === "audit" && view?.actions.includes("admin")));
  return h("nav", { "aria-label": "Bucket" }, h("ul", { class: "tabs" }, items.map(([page, text]) =>
    h("li", {}, h("a", { href: href(page, bucket), "aria-current": page === current ? "page" : false }, text)))));
}

function badges(b) {
  return [
    h("span", { class: "badge", title: "Classification" }, b.classification),
    b.read_only ? h("span", { class: "badge warn" }, "read-only") : null,
    b.prefix_grants?.length && !b.actions?.length ? h("span", { class: "badge" }, "shared prefixes") : null,
  ];
}

/** The bucket as the caller sees it, from the list of buckets (which knows shared prefixes too). */
async function bucketView(ctx, name) {
  return (await ctx.client.buckets()).find((b) => b.name === name);
}

// -- my buckets

export async function buckets(ctx) {
  const all = await ctx.client.buckets();
  const groups = [
    ["Personal", all.filter((b) => b.owner === ctx.me.subject)],
    ["Projects", all.filter((b) => b.project)],
    ["Shared with me", all.filter((b) => b.owner !== ctx.me.subject && !b.project)],
  ];
  fill(ctx.main, h("h1", {}, "Buckets"),
    ...groups.map(([title, list]) => [
      h("h2", {}, title),
      list.length
        ? h("div", { class: "scroll" }, h("table", {},
            h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Bucket"), h("th", { scope: "col" }, "Class"), h("th", { scope: "col" }, "You may"))),
            h("tbody", {}, list.map((b) => h("tr", {},
              h("td", {}, h("a", { href: href("b", b.name) }, b.name), ...badges(b)),
              h("td", {}, b.project ? `${b.class} (${b.project})` : b.class),
              h("td", {}, b.actions.length ? b.actions.join(", ") : b.prefix_grants.map((g) => `${g.role} on ${g.prefix || "everything"}`).join("; ")))))))
        : h("p", { class: "muted" }, title === "Shared with me" ? "Nothing is shared with you yet." : "None."),
    ]).flat());
}

// -- the object browser

export async function browser(ctx, bucket, prefix) {
  if (prefix && !prefix.endsWith("/")) prefix += "/";
  const view = await bucketView(ctx, bucket);
  const may = (action) => view ? view.actions.includes(action) || view.prefix_grants.some((g) => prefix.startsWith(g.prefix) && g.role !== "viewer") : false;
  const writable = view && !view.read_only && may("write");
  const tokens = [null];
  const table = h("tbody");
  const pager = h("div", { class: "pager" });
  const filter = h("input", { type: "search", id: "filter", placeholder: "Filter names on this page" });
  const uploads = h("ul", { class: "uploads", "aria-label": "Uploads" });

  const crumbs = [h("li", {}, h("a", { href: href("b", bucket) }, bucket))];
  let path = "";
  for (const part of prefix.split("/").filter(Boolean)) {
    path += part + "/";
    crumbs.push(h("li", {}, h("a", { href: href("b", bucket, path) }, part)));
  }

  async function load() {
    const page = await ctx.client.listPage(bucket, { prefix, pageToken: tokens.at(-1) });
    const folders = new Map();
    const files = [];
    for (const o of page.objects) {
      const rest = o.name.slice(prefix.length);
      if (rest.includes("/")) folders.set(rest.split("/")[0] + "/", true);
      else files.push(o);
    }
    table.replaceChildren(
      ...[...folders.keys()].map((name) => h("tr", { dataset: { name: prefix + name } },
        h("td", {}, "📁 ", h("a", { href: href("b", bucket, prefix + name) }, name)), h("td", { class: "num" }, ""), h("td", { class: "wide" }, ""), h("td", {}, ""))),
      ...files.map((o) => h("tr", { dataset: { name: o.name } },
        h("td", {}, o.name.slice(prefix.length)),
        h("td", { class: "num" }, bytes(o.size)),
        h("td", { class: "wide" }, when(o.updated)),
        h("td", {}, h("div", { class: "row" },
          h("button", { type: "button", class: "secondary", "aria-label": `Open ${o.name}`, onclick: () => open(o.name, false) }, "Open"),
          h("button", { type: "button", class: "secondary", "aria-label": `Download ${o.name}`, onclick: () => open(o.name, true) }, "Download"),
          may("delete") ? h("button", { type: "button", class: "danger", "aria-label": `Delete ${o.name}`, onclick: () => remove(o.name) }, "Delete") : null)))));
    if (!folders.size && !files.length) table.replaceChildren(h("tr", {}, h("td", { colspan: 4, class: "muted" }, "Nothing here yet.")));
    applyFilter();
    fill(pager, 
      tokens.length > 1 ? h("button", { type: "button", class: "secondary", onclick: () => { tokens.pop(); attempt(load); } }, "Previous page") : null,
      page.next_page_token ? h("button", { type: "button", class: "secondary", onclick: () => { tokens.push(page.next_page_token); attempt(load); } }, "Next page") : null);
  }

  function applyFilter() {
    const wanted = filter.value.trim().toLowerCase();
    for (const row of table.querySelectorAll("tr[data-name]")) row.hidden = wanted !== "" && !row.dataset.name.toLowerCase().includes(wanted);
  }
  filter.addEventListener("input", applyFilter);

  async function open(object, download) {
    await attempt(async () => {
      const name = object.split("/").pop();
      const signed = await ctx.client.sign({ bucket, object, method: "GET", ...(download ? { response_content_disposition: `attachment; filename="${name.replace(/["\\\r\n]/g, "_")}"` } : {}) });
      const link = h("a", { href: signed.url, target: download ? null : "_blank", rel: "noopener", download: download ? name : null });
      document.body.append(link);
      link.click();
      link.remove();
    });
  }

  async function remove(object) {
    if (!(await ask(`Delete ${object}? This cannot be undone.`))) return;
    await attempt(async () => {
      await ctx.client.delete(bucket, object);
      await load();
      say(`Deleted ${object}.`, "done");
    });
  }

  function upload(files) {
    for (const file of files) {
      const object = prefix + file.name;
      const controller = new AbortController();
      const bar = h("progress", { max: 100, value: 0, "aria-label": `Upload of ${file.name}` });
      const state = h("span", { class: "muted" }, bytes(file.size));
      const cancel = h("button", { type: "button", class: "secondary", onclick: () => controller.abort() }, `Cancel ${file.name}`);
      const item = h("li", { dataset: { object } }, h("span", {}, file.name), bar, state, cancel);
      uploads.append(item);
      ctx.client.upload(bucket, object, file, {
        contentType: file.type || "application/octet-stream",
        signal: controller.signal,
        chunkSize: 8 * 1024 * 1024,
        onProgress: ({ loaded, total }) => (bar.value = total ? Math.floor((100 * loaded) / total) : 100),
      }).then(async () => {
        bar.value = 100;
        state.textContent = "uploaded";
        item.dataset.done = "true";
        cancel.remove();
        say(`Uploaded ${file.name}.`, "done");
        await attempt(load);
      }, (e) => {
        state.textContent = e?.name === "AbortError" ? "cancelled" : sentence(e);
        item.dataset.done = e?.name === "AbortError" ? "cancelled" : "failed";
        cancel.remove();
        if (e?.name !== "AbortError") say(`${file.name}: ${sentence(e)}`, "error");
      });
    }
  }

  const input = h("input", { type: "file", multiple: true, id: "files", onchange: (e) => { upload([...e.target.files]); e.target.value = ""; } });
  const drop = h("div", { class: "drop", id: "drop" },
    h("p", {}, "Drop files here to upload them to ", h("strong", {}, prefix || "the top of the bucket"), ", or"),
    h("label", {}, "choose files", input));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload([...e.dataTransfer.files]); });

  const folder = h("form", { class: "row" }, field("New folder", { name: "folder", required: true, pattern: "[^/]+" }), h("button", { type: "submit", class: "secondary" }, "Open new folder"));
  folder.addEventListener("submit", (e) => {
    e.preventDefault();
    const name = new FormData(folder).get("folder").trim();
    // A folder exists by its objects: this opens the empty prefix to upload into.
    if (name) ctx.go(href("b", bucket, prefix + name + "/"));
  });

  fill(ctx.main, 
    h("h1", {}, prefix ? `${bucket} / ${prefix}` : bucket, ...(view ? badges(view) : [])),
    tabs(bucket, "b", view),
    h("nav", { "aria-label": "Folder" }, h("ol", { class: "crumbs" }, crumbs)),
    writable ? [drop, uploads, folder] : h("p", { class: "muted" }, view?.read_only ? "This bucket is read-only." : "You may read here."),
    h("div", { class: "row" }, h("label", { for: "filter" }, "Filter", filter)),
    h("div", { class: "scroll" }, h("table", { "aria-label": "Objects" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col", class: "num" }, "Size"), h("th", { scope: "col", class: "wide" }, "Updated"), h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")))),
      table)),
    pager);
  await load();
}

// -- sharing

export async function share(ctx, bucket, prefix = "") {
  const view = await bucketView(ctx, bucket);
  const list = h("tbody");
  async function load() {
    const grants = await ctx.client.grants(bucket);
    list.replaceChildren(...grants.map((g) => h("tr", { dataset: { principal: g.principal, prefix: g.prefix } },
      h("td", {}, g.exact ? `the object ${g.prefix}` : g.prefix ? `objects under ${g.prefix}` : "the whole bucket"),
      h("td", {}, g.principal === "authenticated" ? "everyone signed in" : g.principal),
      h("td", {}, g.role),
      h("td", { class: "wide" }, g.expires_at ? when(g.expires_at) : "no end"),
      h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Revoke ${g.role} for ${g.principal} on ${g.prefix || "the bucket"}`, onclick: () => revoke(g) }, "Revoke")))));
    if (!grants.length) list.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing is shared yet.")));
  }
  async function revoke(g) {
    if (!(await ask(`Stop sharing ${g.prefix || "the bucket"} with ${g.principal}?`, "Revoke"))) return;
    await attempt(async () => {
      await ctx.client.revokeGrant(bucket, g.id);
      await load();
      say(`Revoked ${g.principal}'s ${g.role} on ${g.prefix || "the bucket"}.`, "done");
    });
  }
  const kind = select("Share with", { name: "kind", id: "share-kind" }, [["user", "a user"], ["group", "a group"], ["project", "a project's members"], ["authenticated", "everyone signed in"]]);
  const who = field("Who (user name, group path or project)", { name: "who", id: "share-who" });
  kind.querySelector("select").addEventListener("change", (e) => (who.hidden = e.target.value === "authenticated"));
  const form = h("form", { class: "row", id: "share-form" },
    select("What", { name: "what", id: "share-what" }, [["prefix", "a folder (prefix)"], ["object", "one object"]]),
    field("Path", { name: "path", id: "share-path", value: prefix, placeholder: "reports/" }),
    kind, who,
    select("Role", { name: "role", id: "share-role" }, ROLES),
    field("Until (optional)", { name: "until", id: "share-until", type: "datetime-local" }),
    h("button", { type: "submit" }, "Share"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    const principal = data.kind === "authenticated" ? "authenticated" : `${data.kind}:${String(data.who ?? "").trim()}`;
    const grant = { principal, role: data.role, ...(data.what === "object" ? { object: data.path } : { prefix: data.path }) };
    if (data.until) grant.expires_at = new Date(data.until).toISOString();
    await attempt(async () => {
      await ctx.client.grant(bucket, grant);
      await load();
      say(`Shared ${data.path || "the bucket"} with ${principal} as ${data.role}.`, "done");
    });
  });
  fill(ctx.main, h("h1", {}, `Sharing ${bucket}`), tabs(bucket, "share", view),
    h("h2", {}, "Share"), form,
    h("h2", {}, "Shared now"),
    h("div", { class: "scroll" }, h("table", { "aria-label": "Shares" },
      h("thead", {}, h("tr", {}, ["What", "With", "Role"].map((t) => h("th", { scope: "col" }, t)), h("th", { scope: "col", class: "wide" }, "Until"), h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")))),
      list)));
  await load();
}

// -- who touched what

export async function audit(ctx, bucket) {
  const view = bucket ? await bucketView(ctx, bucket) : null;
  const rows = h("tbody");
  const more = h("div", { class: "pager" });
  let filters = {};
  let next = null;
  const line = (e) => h("tr", { dataset: { decision: e.decision, subject: e.subject ?? "" } },
    h("td", {}, when(e.at)),
    h("td", {}, e.subject ?? ""),
    h("td", {}, e.method ?? e.action),
    bucket ? null : h("td", {}, e.bucket ?? ""),
    h("td", {}, e.object ?? ""),
    h("td", {}, e.decision === "allow" ? "allowed" : e.decision === "deny" ? "refused" : "not found"),
    h("td", { class: "wide" }, e.reason));
  async function page(reset) {
    const answer = await ctx.client.auditPage(bucket, { ...filters, pageToken: reset ? null : next, limit: 100 });
    if (reset) rows.replaceChildren();
    rows.append(...answer.events.map(line));
    if (!rows.children.length) rows.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "Nothing matches.")));
    next = answer.next_page_token ?? null;
    fill(more, next ? h("button", { type: "button", class: "secondary", onclick: () => attempt(() => page(false)) }, "Load older") : null,
      h("button", { type: "button", class: "secondary", onclick: () => attempt(exportAll) }, "Export as NDJSON"));
  }
  async function exportAll() {
    const lines = [];
    let token = null;
    do {
      const answer = await ctx.client.auditPage(bucket, { ...filters, pageToken: token, limit: 1000 });
      for (const e of answer.events) lines.push(JSON.stringify(e) + "\n");
      token = answer.next_page_token ?? null;
    } while (token && lines.length < 1_000_000);
    const link = h("a", { href: URL.createObjectURL(new Blob(lines, { type: "application/x-ndjson" })), download: `audit-${bucket ?? "all"}.ndjson` });
    document.body.append(link);
    link.click();
    link.remove();
    say(`Exported ${lines.length} rows.`, "done");
  }
  const form = h("form", { class: "row", id: "audit-form" },
    field("Who (subject)", { name: "subject", id: "audit-subject" }),
    field("Object prefix", { name: "object_prefix", id: "audit-prefix" }),
    select("Decision", { name: "decision", id: "audit-decision" }, [["", "any"], ["allow", "allowed"], ["deny", "refused"], ["not_found", "not found"]]),
    field("Since", { name: "since", type: "datetime-local" }),
    field("Until", { name: "until", type: "datetime-local" }),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    filters = {};
    for (const name of ["subject", "object_prefix", "decision"]) if (data[name]) filters[name] = data[name];
    for (const name of ["since", "until"]) if (data[name]) filters[name] = new Date(data[name]).toISOString();
    attempt(() => page(true));
  });
  fill(ctx.main, h("h1", {}, bucket ? `Who touched ${bucket}` : "Who touched what, everywhere"),
    bucket ? tabs(bucket, "audit", view) : null, form,
    h("div", { class: "scroll" }, h("table", { "aria-label": "Audit, newest first" },
      h("thead", {}, h("tr", {}, ["When", "Who", "What", bucket ? null : "Bucket", "Object", "Decision"].filter(Boolean).map((t) => h("th", { scope: "col" }, t)), h("th", { scope: "col", class: "wide" }, "Why"))),
      rows)), more);
  await page(true);
}

// -- projects

export async function projects(ctx) {
  const list = await ctx.client.projects();
  const form = h("form", { class: "row", id: "project-form" },
    field("Short name", { name: "slug", id: "project-slug", required: true, pattern: "[a-z0-9][a-z0-9-]*", title: "lower-case letters, digits and dashes" }),
    field("Name", { name: "name", id: "project-name", required: true }),
    h("button", { type: "submit" }, "Create project and its bucket"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    await attempt(async () => {
      await ctx.client.createProject({ slug: data.slug, name: data.name });
      await ctx.client.createBucket({ name: `p-${data.slug}`, class: "project", project: data.slug });
      say(`Created project ${data.slug} and its bucket p-${data.slug}.`, "done");
      ctx.go(`#/p/${enc(data.slug)}`);
    });
  });
  fill(ctx.main, h("h1", {}, "Projects"),
    list.length
      ? h("ul", {}, list.map((p) => h("li", {}, h("a", { href: `#/p/${enc(p.slug)}` }, p.name), ` (${p.slug})`, p.role ? h("span", { class: "badge" }, p.role) : null)))
      : h("p", { class: "muted" }, "You are in no project yet."),
    h("h2", {}, "New project"), form);
}

export async function project(ctx, slug) {
  const members = h("tbody");
  let mine = null;
  async function load() {
    const p = await ctx.client.project(slug);
    mine = p.role;
    const owner = mine === "owner";
    members.replaceChildren(...(p.members ?? []).map((m) => {
      const role = h("select", { "aria-label": `Role of ${m.member}`, disabled: !owner }, ROLES.map(([value, text]) => h("option", { value, selected: value === m.role }, text)));
      role.addEventListener("change", () => attempt(async () => {
        await ctx.client.setMember(slug, m.member, role.value);
        await load();
        say(`${m.member} is now ${role.value}.`, "done");
      }).then(() => load()));
      return h("tr", { dataset: { member: m.member } }, h("td", {}, m.member), h("td", {}, role),
        h("td", {}, owner ? h("button", { type: "button", class: "danger", "aria-label": `Remove ${m.member}`, onclick: () => remove(m.member) }, "Remove") : null));
    }));
    add.hidden = !owner;
  }
  async function remove(member) {
    if (!(await ask(`Remove ${member} from ${slug}?`, "Remove"))) return;
    await attempt(async () => {
      await ctx.client.removeMember(slug, member);
      await load();
      say(`Removed ${member}.`, "done");
    });
  }
  const add = h("form", { class: "row", id: "member-form" },
    select("Add", { name: "kind", id: "member-kind" }, [["user", "a user"], ["group", "a group"]]),
    field("User name or group path", { name: "who", id: "member-who", required: true }),
    select("Role", { name: "role", id: "member-role" }, ROLES),
    h("button", { type: "submit" }, "Add member"));
  add.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(add));
    // Always typed: a subject may itself contain a colon.
    const member = `${data.kind === "group" ? "group" : "user"}:${data.who.trim()}`;
    await attempt(async () => {
      await ctx.client.setMember(slug, member, data.role);
      add.reset();
      await load();
      say(`Added ${member} as ${data.role}.`, "done");
    });
  });
  fill(ctx.main, h("h1", {}, `Project ${slug}`),
    h("p", {}, "Its bucket: ", h("a", { href: href("b", `p-${slug}`) }, `p-${slug}`)),
    h("h2", {}, "Members"),
    h("div", { class: "scroll" }, h("table", { "aria-label": "Members" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Member"), h("th", { scope: "col" }, "Role"), h("th", { scope: "col" }, h("span", { class: "muted" }, "Actions")))), members)),
    add);
  await load();
}

// Small DOM helpers and the sentences errors become. No framework: the pages are plain DOM.
import { StorageBrokerError } from "./client/index.js";

/** An element: `h("a", {href: "#/"}, "text", child…)`. Attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Says `text` in the status line (read out by screen readers). */
export function say(text, kind = "info") {
  const status = document.getElementById("status");
  status.replaceChildren(h("span", { class: kind }, text));
}

/** What an error means, as a sentence, from its stable code. */
export function sentence(error) {
  if (!(error instanceof StorageBrokerError)) return `Something went wrong: ${error?.message ?? error}`;
  const detail = error.problem?.detail ?? error.message;
  switch (error.code) {
    case "unauthorized": return "You are not signed in, or your session has ended. Sign in again.";
    case "not_found": return "There is no such bucket, or you may not see it.";
    case "forbidden": return "You may not do that here.";
    case "content_type_not_allowed": return `This kind of file is not allowed in this bucket (${detail}).`;
    case "size_exceeds_limit":
    case "max_size_exceeds_limit":
      return error.source === "storage" ? "The file is larger than the upload link allows." : `This file is too large for this bucket (${detail}).`;
    case "last_owner": return "A project keeps at least one owner: make someone else owner first.";
    case "project_exists": return "A project with that short name exists already.";
    case "bucket_exists": return "A bucket with that name exists already.";
    case "member_not_found": return "That member is not in the project.";
    case "grant_not_found": return "That share was already revoked.";
    case "url_expired": return "The link expired before storage got it. Try again.";
    case "storage_forbidden": return "Storage refused the link. Try again.";
    case "object_not_found": return "That object is not there any more.";
    case "network_error": return "The service cannot be reached. Check your connection and try again.";
    case "rate_limited": return "Too many requests at once. Wait a moment and try again.";
    case "unavailable": return "The service is busy or down for a moment. Try again shortly.";
    default: return detail ? `${detail[0].toUpperCase()}${detail.slice(1)}.`.replace(/\.\.$/, ".") : `The request failed (${error.code}).`;
  }
}

/** Runs `work`, saying its error as a sentence; resolves to its result or undefined. */
export async function attempt(work) {
  try {
    return await work();
  } catch (e) {
    if (e?.name === "AbortError") return undefined;
    say(sentence(e), "error");
    return undefined;
  }
}

/** A modal yes/no question; resolves to the answer. */
export function ask(question, yes = "Delete") {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "ask-title" },
      h("p", { id: "ask-title" }, question),
      h("div", { class: "row" },
        h("button", { type: "button", class: "danger", onclick: () => { dialog.close(); resolve(true); } }, yes),
        h("button", { type: "button", class: "secondary", onclick: () => { dialog.close(); resolve(false); } }, "Cancel")));
    dialog.addEventListener("cancel", () => resolve(false));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** A labelled input: `field("Name", {name: "slug", required: true})`. */
export function field(label, attrs = {}) {
  return h("label", {}, label, h("input", attrs));
}

export function select(label, attrs, options) {
  return h("label", {}, label, h("select", attrs, options.map(([value, text]) => h("option", { value }, text))));
}

/** Replaces `parent`'s children with `parts` (arrays flattened, null and false left out). */
export function fill(parent, ...parts) {
  parent.replaceChildren(...parts.flat(Infinity).filter((p) => p !== null && p !== undefined && p !== false));
}

// The inspector page: a table of the proxy's recent exchanges, kept current by server-sent
// events, each row expandable to its details and replayable. Every value goes in with
// textContent: paths and headers come from whoever called the proxy.
"use strict";

const API = "/inspect/api/exchanges";
const COLUMNS = 11;
const rows = document.getElementById("rows");
const table = document.getElementById("exchanges");
let size = 100;
// Whether a list has come yet: until then the page cannot say there are no requests.
let listed = false;
// Each load takes a ticket: the answer to an older one than the latest may miss what the
// latest saw evicted, so it only adds rows.
let loads = 0;

function cell(value, className) {
  const td = document.createElement("td");
  td.textContent = value === null || value === undefined ? "–" : String(value);
  if (className) td.className = className;
  return td;
}

function clock(epochSeconds) {
  const moment = new Date(epochSeconds * 1000);
  const millis = String(moment.getMilliseconds()).padStart(3, "0");
  return `${moment.toLocaleTimeString([], { hour12: false })}.${millis}`;
}

function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 * 1024) return `${(count / 1024).toFixed(1)} KiB`;
  return `${(count / (1024 * 1024)).toFixed(1)} MiB`;
}

function rowOf(exchange) {
  const row = document.createElement("tr");
  row.id = `exchange-${exchange.id}`;
  row.className = exchange.failed ? "exchange failed" : "exchange";
  row.dataset.id = exchange.id;
  row.dataset.status = exchange.status;
  row.tabIndex = 0;
  row.setAttribute("aria-expanded", "false");
  // The path stays on one line, cut with an ellipsis when long; hover or expand for all of it.
  const path = cell(null, "path");
  const line = document.createElement("div");
  line.className = "path-line";
  const text = document.createElement("span");
  text.className = "path-text";
  text.textContent = exchange.target;
  text.title = exchange.target;
  line.append(text);
  if (exchange.replay_of !== null) {
    row.dataset.replayOf = exchange.replay_of;
    const badge = document.createElement("span");
    badge.className = "replay-of";
    badge.textContent = `replay of #${exchange.replay_of}`;
    line.append(badge);
  }
  path.replaceChildren(line);
  const status = exchange.error ? `${exchange.status} ${exchange.error}` : exchange.status;
  row.append(
    cell(`#${exchange.id}`),
    cell(clock(exchange.started)),
    cell(exchange.method),
    path,
    cell(exchange.route),
    cell(status, "status"),
    cell(exchange.upstream_status),
    cell(`${exchange.duration_ms} ms`),
    cell(`${bytes(exchange.bytes_in)} / ${bytes(exchange.bytes_out)}`),
    cell(exchange.amzn_request_id, "request-id"),
    cell(exchange.request_id, "request-id"),
  );
  row.addEventListener("click", () => toggle(row));
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      toggle(row);
    }
  });
  return row;
}

// Rows stay ordered newest first, whichever of the list and the events brought them.
function add(exchange) {
  if (document.getElementById(`exchange-${exchange.id}`)) return;
  const before = [...rows.querySelectorAll("tr.exchange")].find(
    (other) => Number(other.dataset.id) < exchange.id,
  );
  rows.insertBefore(rowOf(exchange), before || null);
  const shown = rows.querySelectorAll("tr.exchange");
  for (let index = size; index < shown.length; index += 1) remove(shown[index]);
  showEmpty();
}

function remove(row) {
  document.getElementById(`details-${row.dataset.id}`)?.remove();
  row.remove();
}

// "No requests yet" only once a list said so, never while it is still on its way.
function showEmpty() {
  const none = rows.querySelector("tr.exchange") === null;
  document.getElementById("empty").hidden = !(listed && none);
}

function showList(state, text) {
  table.dataset.list = state;
  const note = document.getElementById("list-state");
  note.textContent = text;
  note.hidden = !text;
}

// The list comes at once on load, not only once the live stream is up: a stream that is
// slow to connect, or refused, must not leave the page saying there are no requests.
async function load() {
  const ticket = ++loads;
  let listing;
  try {
    const response = await fetch(API);
    if (!response.ok) throw new Error(`status ${response.status}`);
    listing = await response.json();
  } catch (error) {
    if (ticket === loads && !listed) showList("failed", `could not load the list (${error.message})`);
    return;
  }
  size = listing.size;
  document.getElementById("size").textContent = size;
  if (listing.proxy_url) {
    document.getElementById("try-url").textContent = `curl ${listing.proxy_url}/`;
  }
  // A row newer than the list's newest came by an event meanwhile: it stays. An older one
  // missing from the list has been evicted.
  const newest = listing.exchanges.length ? listing.exchanges[0].id : 0;
  const ids = new Set(listing.exchanges.map((exchange) => exchange.id));
  for (const row of ticket === loads ? rows.querySelectorAll("tr.exchange") : []) {
    const id = Number(row.dataset.id);
    if (id <= newest && !ids.has(id)) remove(row);
  }
  for (const exchange of listing.exchanges) add(exchange);
  listed = true;
  showList("loaded", "");
  showEmpty();
}

async function toggle(row) {
  const id = row.dataset.id;
  const open = document.getElementById(`details-${id}`);
  if (open) {
    open.remove();
    row.setAttribute("aria-expanded", "false");
    return;
  }
  if (row.dataset.loading) return;
  row.dataset.loading = "true";
  try {
    const response = await fetch(`${API}/${id}`);
    const answer = await response.json();
    const details = document.createElement("tr");
    details.id = `details-${id}`;
    details.className = "details";
    details.dataset.id = id;
    const holder = document.createElement("td");
    holder.colSpan = COLUMNS;
    if (response.ok) holder.append(render(answer));
    else holder.textContent = answer.message;
    details.append(holder);
    row.after(details);
    row.setAttribute("aria-expanded", "true");
  } finally {
    delete row.dataset.loading;
  }
}

function render(exchange) {
  const fragment = document.getElementById("details-template").content.cloneNode(true);
  const field = (name) => fragment.querySelector(`[data-field="${name}"]`);
  const section = (name) => fragment.querySelector(`[data-section="${name}"]`);
  field("target").textContent = `${exchange.method} ${exchange.target}`;
  section("problem").hidden = !exchange.failure;
  if (exchange.failure) fillFailure(exchange, exchange.failure, field, section);
  section("upstream_body").hidden = !exchange.upstream_body;
  if (exchange.upstream_body) {
    field("upstream_body").textContent = describeBody(exchange.upstream_body);
  }
  for (const name of ["request_headers", "sent_headers", "response_headers"]) {
    fillHeaders(field(name), exchange[name]);
  }
  const signing = exchange.signing;
  field("signing").textContent = signing
    ? `${signing.algorithm}, ${signing.region_set ? `region set ${signing.region_set}` : `region ${signing.region}`}`
    : "(not signed)";
  field("canonical_request").textContent = exchange.canonical_request ?? "(not signed)";
  field("string_to_sign").textContent = exchange.string_to_sign ?? "(not signed)";
  field("body").textContent = describeBody(exchange.body);
  const button = fragment.querySelector("button.replay");
  const result = field("replay_result");
  button.dataset.replay = exchange.id;
  button.disabled = !exchange.replay.available;
  if (!exchange.replay.available) result.textContent = `cannot replay: ${exchange.replay.reason}`;
  button.addEventListener("click", () => replay(exchange.id, button, result));
  return fragment;
}

function fillFailure(exchange, failure, field, section) {
  field("error").textContent = exchange.error
    ? `${exchange.status} ${exchange.error}`
    : `status ${exchange.status}` + (exchange.amzn_error_type ? ` (${exchange.amzn_error_type})` : "");
  const aws = failure.aws;
  section("aws").hidden = !aws;
  if (aws) {
    field("aws_status").textContent = aws.status;
    field("aws_error_type").textContent =
      aws.error_type || "none (the reply did not come from Lambda: CloudFront, or another server)";
    field("aws_message").textContent = aws.message || "(no message: its reply body, if any, is below)";
  }
  section("concluded").hidden = !failure.concluded;
  field("concluded").textContent = failure.concluded || "";
  section("checks").hidden = failure.checks.length === 0;
  for (const check of failure.checks) {
    const item = document.createElement("li");
    item.textContent = check;
    field("checks").append(item);
  }
}

function fillHeaders(table, headers) {
  if (headers === null) {
    table.append(headerRow("(nothing was sent upstream)", ""));
    return;
  }
  for (const [name, value] of headers) table.append(headerRow(name, value));
}

function headerRow(name, value) {
  const row = document.createElement("tr");
  const key = document.createElement("th");
  key.textContent = name;
  const text = document.createElement("td");
  text.textContent = value;
  row.append(key, text);
  return row;
}

function describeBody(body) {
  if (body.text !== null) {
    const more = body.truncated ? `\n… (the first 4 KiB of ${bytes(body.size)})` : "";
    return body.size ? body.text + more : "(empty)";
  }
  return body.note || "(empty)";
}

async function replay(id, button, result) {
  button.disabled = true;
  result.textContent = "replaying…";
  try {
    // The custom header is what the server checks: a cross-site form cannot send it.
    const response = await fetch(`${API}/${id}/replay`, {
      method: "POST",
      headers: { "X-Inspector": "1" },
    });
    const answer = await response.json();
    result.textContent = response.ok
      ? `replayed: status ${answer.status}` + (answer.id ? `, now #${answer.id}` : "")
      : `replay refused: ${answer.message}`;
  } catch (error) {
    result.textContent = `replay failed: ${error}`;
  } finally {
    button.disabled = false;
  }
}

function connect() {
  const live = document.getElementById("live");
  const show = (state, text) => {
    live.dataset.state = state;
    live.textContent = text;
  };
  const events = new EventSource("/inspect/events");
  // On every (re)connection the list is fetched again: events missed meanwhile are in it.
  events.addEventListener("open", () => {
    show("open", "live");
    load();
  });
  events.addEventListener("error", () => {
    if (events.readyState === EventSource.CLOSED) show("closed", "disconnected: reload the page");
    else show("reconnecting", "reconnecting…");
  });
  events.addEventListener("exchange", (event) => add(JSON.parse(event.data)));
}

load();
connect();

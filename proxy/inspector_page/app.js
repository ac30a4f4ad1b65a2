// The inspector page: a table of the proxy's recent exchanges, kept current by server-sent
// events, each row expandable to its details and replayable. Every value goes in with
// textContent: paths and headers come from whoever called the proxy.
"use strict";

const API = "/inspect/api/exchanges";
const COLUMNS = 11;
const rows = document.getElementById("rows");
let size = 100;

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
  const path = cell(exchange.target, "path");
  if (exchange.replay_of !== null) {
    row.dataset.replayOf = exchange.replay_of;
    const badge = document.createElement("span");
    badge.className = "replay-of";
    badge.textContent = `replay of #${exchange.replay_of}`;
    path.append(" ", badge);
  }
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
  document.getElementById("empty").hidden = shown.length > 0;
}

function remove(row) {
  document.getElementById(`details-${row.dataset.id}`)?.remove();
  row.remove();
}

async function load() {
  const response = await fetch(API);
  if (!response.ok) return;
  const listing = await response.json();
  size = listing.size;
  document.getElementById("size").textContent = size;
  const ids = new Set(listing.exchanges.map((exchange) => exchange.id));
  for (const row of rows.querySelectorAll("tr.exchange")) {
    if (!ids.has(Number(row.dataset.id))) remove(row);
  }
  for (const exchange of listing.exchanges) add(exchange);
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
  const problem = fragment.querySelector('[data-section="problem"]');
  problem.hidden = !(exchange.failed || exchange.diagnosis);
  field("error").textContent = exchange.error
    ? `${exchange.status} ${exchange.error}`
    : `status ${exchange.status}` + (exchange.amzn_error_type ? ` (${exchange.amzn_error_type})` : "");
  field("diagnosis").textContent = exchange.diagnosis || "";
  for (const name of ["request_headers", "sent_headers", "response_headers"]) {
    fillHeaders(field(name), exchange[name]);
  }
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
    const more = body.truncated ? `\n… (first 4 KiB of ${bytes(body.size)})` : "";
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

connect();

// The Resonate dashboard: plain JavaScript over the gateway's JSON routes.
// Live updates come from event streams (read with fetch, so the token can be
// sent as a header); nothing polls.
"use strict";
(() => {
  const config = JSON.parse(document.body.dataset.config);
  const prefix = config.prefix;
  const TOKEN_KEY = "resonate-web-token";
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let functions = [];
  let detailStream = null;
  let shownId = null;

  class Refused extends Error {}

  // ── HTTP ──────────────────────────────────────────────────────────────────

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    if (token) h.Authorization = "Bearer " + token;
    return h;
  }

  async function api(path, options) {
    const opts = options || {};
    const resp = await fetch(prefix + path, Object.assign({}, opts, { headers: headers(opts.headers) }));
    if (resp.status === 401) {
      askToken(token ? "That token was refused. Enter another." : null);
      throw new Refused("unauthorized");
    }
    const text = await resp.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
    if (!resp.ok) {
      throw new Error((body && (body.detail || body.title)) || resp.status + " " + resp.statusText);
    }
    return body;
  }

  // Django checks a POST that carries cookies (a logged-in session) for its CSRF token.
  function csrfToken() {
    const match = /(?:^|;\s*)csrftoken=([^;]+)/.exec(document.cookie);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function post(path, payload) {
    const opts = { method: "POST", headers: {} };
    const csrf = csrfToken();
    if (csrf) opts.headers["X-CSRFToken"] = csrf;
    if (payload !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(payload);
    }
    return api(path, opts);
  }

  // Read a server-sent event stream; onOpen runs once the server has subscribed us.
  async function stream(path, onEvent, signal, onOpen) {
    const resp = await fetch(prefix + path, { headers: headers({ Accept: "text/event-stream" }), signal });
    if (resp.status === 401) {
      askToken(null);
      throw new Refused("unauthorized");
    }
    if (!resp.ok || !resp.body) throw new Error(resp.status + " " + resp.statusText);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let opened = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      if (!opened) { opened = true; if (onOpen) onOpen(); }
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of frame.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(event, JSON.parse(data.join("\n")));
      }
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ── token ─────────────────────────────────────────────────────────────────

  function askToken(why) {
    const dialog = $("token-dialog");
    if (why) $("token-why").textContent = why;
    $("token-button").hidden = false;
    if (!dialog.open) dialog.showModal();
  }

  $("token-form").addEventListener("submit", () => {
    token = $("token-input").value.trim();
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    boot();
  });
  $("token-button").addEventListener("click", () => askToken(null));

  // ── helpers ───────────────────────────────────────────────────────────────

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const badge = (status) => el("span", { class: "badge " + status }, status);
  const enc = encodeURIComponent;

  function duration(created, settled) {
    if (!created || !settled) return null;
    const ms = Date.parse(settled) - Date.parse(created);
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.round(ms / 60000) + " min";
  }

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");

  // "customer:c-7 order:o-1" as {customer: "c-7", order: "o-1"}.
  function parseTags(text) {
    const tags = {};
    for (const part of text.trim().split(/\s+/).filter(Boolean)) {
      const at = part.indexOf(":");
      if (at < 1) throw new Error("a tag is key:value, got " + JSON.stringify(part));
      tags[part.slice(0, at)] = part.slice(at + 1);
    }
    return tags;
  }

  const tagText = (tags) => Object.entries(tags || {}).map(([k, v]) => k + ":" + v).join(" ");

  // ── functions and the start form ──────────────────────────────────────────

  async function loadFunctions() {
    const body = await api("/functions");
    functions = body.functions;
    const select = $("start-function");
    const filter = $("filter-function");
    select.replaceChildren();
    filter.replaceChildren(el("option", { value: "" }, "any"));
    for (const fn of functions) {
      select.append(el("option", { value: fn.name }, fn.name));
      filter.append(el("option", { value: fn.name }, fn.name));
    }
    describeFunction();
  }

  // A placeholder value of a parameter's JSON Schema: its default, else one of its type.
  function placeholder(schema) {
    if (!schema) return null;
    if ("default" in schema) return schema.default;
    const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
    return { integer: 0, number: 0, string: "", boolean: false, array: [], object: {} }[type] ?? null;
  }

  // Until the arguments are edited, they hold a skeleton of the function's parameters.
  let argsEdited = false;
  $("start-args").addEventListener("input", () => { argsEdited = true; });

  function describeFunction() {
    const fn = functions.find((f) => f.name === $("start-function").value);
    const properties = fn && fn.parameters && fn.parameters.properties ? fn.parameters.properties : {};
    const names = Object.keys(properties);
    const doc = fn && fn.description ? fn.description : "";
    $("start-doc").textContent = [doc, names.length ? "Parameters: " + names.join(", ") : ""]
      .filter(Boolean).join(" — ");
    if (!argsEdited) {
      const kwargs = Object.fromEntries(names.map((n) => [n, placeholder(properties[n])]));
      $("start-args").value = JSON.stringify(names.length ? { kwargs } : { args: [] });
    }
  }

  $("start-function").addEventListener("change", describeFunction);

  $("start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("start-error").textContent = "";
    let payload;
    try {
      payload = JSON.parse($("start-args").value || "{}");
    } catch (e) {
      $("start-error").textContent = "The arguments are not JSON: " + e.message;
      return;
    }
    const name = $("start-function").value;
    const id = $("start-id").value.trim();
    try {
      const tags = parseTags($("start-tags").value);
      if (Object.keys(tags).length && payload && typeof payload === "object" && !Array.isArray(payload)) {
        payload = Object.assign({}, payload, { tags: Object.assign({}, payload.tags || {}, tags) });
      }
    } catch (e) {
      $("start-error").textContent = e.message;
      return;
    }
    try {
      const doc = await post("/functions/" + enc(name) + (id ? "?id=" + enc(id) : ""), payload);
      upsert(doc);
      $("start-id").value = "";
      location.hash = "#/invocations/" + enc(doc.id);
    } catch (e) {
      if (!(e instanceof Refused)) $("start-error").textContent = e.message;
    }
  });

  // ── the list ──────────────────────────────────────────────────────────────

  function filterTags() {
    try {
      return parseTags($("filter-tags").value);
    } catch (e) {
      return null;
    }
  }

  function matches(doc) {
    const fn = $("filter-function").value;
    const status = $("filter-status").value;
    const tags = filterTags() || {};
    const own = doc.tags || {};
    return (!fn || doc.function === fn) && (!status || doc.status === status) &&
      Object.entries(tags).every(([k, v]) => own[k] === v);
  }

  // The list's filters as query parameters (the list, bulk and statistics routes share them).
  function filterQuery() {
    const query = new URLSearchParams();
    if ($("filter-function").value) query.set("function", $("filter-function").value);
    if ($("filter-status").value) query.set("status", $("filter-status").value);
    for (const [k, v] of Object.entries(filterTags() || {})) query.append("tag", k + ":" + v);
    return query;
  }

  function row(doc) {
    return el("li", { "data-id": doc.id, "data-status": doc.status, class: doc.id === shownId ? "current" : "" },
      el("a", { href: "#/invocations/" + enc(doc.id) },
        el("span", { class: "name" }, doc.function || "?"),
        el("code", { class: "id" }, doc.id),
        badge(doc.status),
        el("time", { datetime: doc.created_at || "" }, when(doc.created_at)),
        ...(doc.tags && Object.keys(doc.tags).length ? [el("span", { class: "tags" }, tagText(doc.tags))] : []),
        ...(doc.waiting_for ? [el("span", { class: "waiting" }, "waiting for " + doc.waiting_for)] : []),
        ...(doc.last_error ? [retrying(doc)] : [])));
  }

  // A pending invocation whose function or step keeps failing (contract v3).
  function retrying(doc) {
    const last = doc.last_error;
    return el("span", { class: "retrying", title: last.type + ": " + last.message },
      "attempt " + doc.attempts + " failed: " + last.type);
  }

  function upsert(doc) {
    const list = $("invocations");
    const existing = list.querySelector('li[data-id="' + CSS.escape(doc.id) + '"]');
    // Answers and pushed events may cross: a settled invocation never turns pending again.
    if (existing && doc.status === "pending" && existing.dataset.status !== "pending") return;
    if (!matches(doc)) {
      if (existing) existing.remove();
    } else if (existing) {
      existing.replaceWith(row(doc));
    } else {
      list.prepend(row(doc));
    }
    $("list-empty").hidden = list.children.length > 0;
    if (doc.id === shownId) render(doc);
  }

  async function loadList() {
    const query = filterQuery();
    query.set("limit", "50");
    if (filterTags() === null) {
      $("list-error").textContent = "A tag filter is key:value, separated by spaces.";
      return;
    }
    try {
      const body = await api("/invocations?" + query);
      $("invocations").replaceChildren(...body.invocations.map(row));
      $("list-empty").hidden = body.invocations.length > 0;
      $("list-error").textContent = "";
    } catch (e) {
      if (!(e instanceof Refused)) $("list-error").textContent = e.message;
    }
  }

  function refilter() {
    loadList();
    loadStats();
    $("bulk-result").textContent = "";
    $("bulk-cancel").hidden = [...filterQuery().keys()].length === 0;
  }

  $("filter-function").addEventListener("change", refilter);
  $("filter-status").addEventListener("change", refilter);
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("goto-id").value.trim();
    if (id) {
      $("goto-id").value = "";
      location.hash = "#/invocations/" + enc(id);
      return;
    }
    refilter();
  });

  // Bulk cancel of what the filters find, once confirmed (at most 100 at a time).
  $("bulk-cancel").addEventListener("click", async () => {
    const query = filterQuery();
    if ([...query.keys()].length === 0) return;
    const what = [...query.entries()].map(([k, v]) => k + "=" + v).join(", ");
    if (!window.confirm("Cancel up to 100 invocations matching " + what + "?")) return;
    query.set("limit", "100");
    try {
      const answer = await post("/invocations/cancel?" + query);
      $("bulk-result").textContent = "Canceled " + answer.done.length + " of " + answer.matched +
        " matching" + (answer.skipped.length ? "; skipped " + answer.skipped.length + " already settled" : "") +
        (answer.next ? "; more match: run it again" : "") + ".";
      loadList();
    } catch (e) {
      if (!(e instanceof Refused)) $("bulk-result").textContent = e.message;
    }
  });

  // Per-function statistics over the last hour, when the list is filtered by a function.
  async function loadStats() {
    const name = $("filter-function").value;
    const card = $("stats");
    if (!name) {
      card.hidden = true;
      return;
    }
    try {
      const s = await api("/functions/" + enc(name) + "/stats?window=3600");
      if (name !== $("filter-function").value) return;
      const d = s.duration_ms;
      card.replaceChildren(
        el("h3", {}, s.function + " — last hour"),
        el("ul", { class: "counts" },
          ...Object.entries(s.counts).map(([k, v]) => el("li", { "data-status": k }, badge(k), " " + v))),
        el("p", { class: "hint" },
          (d ? "p50 " + ms(d.p50) + " · p95 " + ms(d.p95) + " · max " + ms(d.max) : "nothing settled") +
          (s.failure_rate === null ? "" : " · failure rate " + (100 * s.failure_rate).toFixed(1) + "%")),
        ...(s.buckets && s.buckets.length ? [chart(s.buckets)] : []));
      card.hidden = false;
    } catch (e) {
      card.hidden = true;
    }
  }

  // Starts (and, over them, failures) per interval of the window, as inline SVG.
  function chart(buckets) {
    const W = 300, H = 64, gap = 1;
    const most = Math.max(1, ...buckets.map((b) => b.started));
    const w = W / buckets.length;
    const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const bars = buckets.flatMap((b, n) => {
      const x = (n * w + gap / 2).toFixed(2);
      const width = (w - gap).toFixed(2);
      const tip = time(b.start) + ": " + b.started + " started, " + b.failed + " failed";
      const h = (H * b.started) / most;
      const f = (H * b.failed) / most;
      return [
        svg("rect", { class: "started", x, width, y: (H - h).toFixed(2), height: h.toFixed(2), "data-n": b.started }, svg("title", {}, tip)),
        b.failed ? svg("rect", { class: "failed", x, width, y: (H - f).toFixed(2), height: f.toFixed(2), "data-n": b.failed }, svg("title", {}, tip)) : null,
      ];
    });
    const total = buckets.reduce((a, b) => a + b.started, 0);
    const failed = buckets.reduce((a, b) => a + b.failed, 0);
    return el("figure", { class: "chart" },
      svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img",
        "aria-label": total + " started and " + failed + " failed in the last hour, per interval" },
        svg("line", { class: "base", x1: 0, x2: W, y1: H - 0.5, y2: H - 0.5 }),
        ...bars.filter(Boolean)),
      el("figcaption", {},
        el("span", {}, time(buckets[0].start)),
        el("span", { class: "legend" },
          el("i", { class: "started" }), "started ", el("i", { class: "failed" }), "failed · peak " + most),
        el("span", {}, "now")));
  }

  let following = false;
  async function follow() {
    if (following) return;
    following = true;
    try {
      for (;;) {
        try {
          await stream("/events", (event, doc) => {
            if (event === "invocation") upsert(doc);
          }, undefined, () => { setLive(true); loadList(); });
        } catch (e) {
          if (e instanceof Refused) return;
        }
        setLive(false);
        await sleep(2000); // the stream ended (a restart, a proxy): reconnect
      }
    } finally {
      following = false;
      setLive(false);
    }
  }

  function setLive(on) {
    $("live").textContent = on ? "live" : "offline";
    $("live").classList.toggle("on", on);
  }

  // ── one invocation ────────────────────────────────────────────────────────

  function render(doc) {
    $("detail-panel").hidden = false;
    $("detail-id").textContent = doc.id;
    const facts = [
      ["Function", doc.function],
      ["Status", badge(doc.status)],
      ["Created", when(doc.created_at)],
      ["Settled", when(doc.settled_at)],
      ["Duration", duration(doc.created_at, doc.settled_at)],
      ["Tags", tagText(doc.tags)],
      ["Waiting for", doc.waiting_for || null],
      ["Rerun of", doc.rerun_of ? el("a", { href: "#/invocations/" + enc(doc.rerun_of) }, doc.rerun_of) : null],
    ];
    $("detail-facts").replaceChildren(...facts.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const error = $("detail-error");
    const failed = doc.error || doc.last_error;
    error.hidden = !failed;
    if (failed) {
      const last = doc.last_error;
      const retry = last
        ? [el("p", { class: "retry" }, "Attempt " + doc.attempts + " failed" +
            (last.step ? " in step " + last.step : "") + " at " + when(last.at) +
            (last.next_attempt_at ? "; next attempt " + when(last.next_attempt_at) : ""))]
        : [];
      error.replaceChildren(el("strong", {}, failed.type + ": "), el("span", { class: "message" }, failed.message), ...retry);
    }
    $("detail-result").hidden = !("result" in doc);
    if ("result" in doc) $("detail-result-value").textContent = JSON.stringify(doc.result, null, 2);
    const awaiting = doc.awaiting || [];
    $("detail-awaiting").hidden = awaiting.length === 0;
    $("awaiting-list").replaceChildren(...awaiting.map(promiseItem));
    $("cancel-button").hidden = doc.status !== "pending";
    $("rerun-button").hidden = doc.status === "pending";
  }

  function promiseItem(id) {
    const value = el("textarea", { rows: "1", spellcheck: "false", "aria-label": "Value for " + id }, "true");
    const problem = el("span", { class: "error" });
    const settle = (action) => async () => {
      problem.textContent = "";
      let payload;
      try {
        payload = action === "resolve" ? { value: JSON.parse(value.value) } : { error: { message: value.value } };
      } catch (e) {
        problem.textContent = "Not JSON: " + e.message;
        return;
      }
      try {
        await post("/promises/" + enc(id) + "/" + action, payload);
        if (shownId) await loadTree(shownId);
      } catch (e) {
        if (!(e instanceof Refused)) problem.textContent = e.message;
      }
    };
    return el("li", { "data-promise": id },
      el("code", {}, id),
      value,
      el("span", { class: "actions" },
        el("button", { type: "button", class: "approve", onclick: settle("resolve") }, "Approve"),
        el("button", { type: "button", class: "danger reject", onclick: settle("reject") }, "Reject")),
      problem);
  }

  // ── the timeline: every step on one time axis ──────────────────────────────

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function ms(v) {
    if (v < 1000) return Math.round(v) + " ms";
    if (v < 60000) return (v / 1000).toFixed(1) + " s";
    if (v < 3600000) return (v / 60000).toFixed(1) + " min";
    return (v / 3600000).toFixed(1) + " h";
  }

  // The tree as rows in the order the steps were taken, each with its depth.
  function flatten(step, depth, rows) {
    rows.push({ step, depth });
    for (const child of step.children || []) flatten(child, depth + 1, rows);
    return rows;
  }

  // A JSON value, at most LONG characters shown until "Show all" is pressed.
  const LONG = 240;
  function valueBlock(label, value, cls) {
    const text = JSON.stringify(value, null, 2);
    const full = text === undefined ? "null" : text;
    const pre = el("pre", { class: "value " + (cls || "") },
      full.length > LONG ? full.slice(0, LONG) + "…" : full);
    const more = full.length > LONG
      ? el("button", { type: "button", class: "quiet more", onclick: (ev) => {
          pre.textContent = full;
          ev.currentTarget.remove();
        } }, "Show all (" + full.length + " characters)")
      : null;
    return [el("dt", {}, label), el("dd", {}, pre, more)];
  }

  function stepDetails(step, t0) {
    const facts = [
      [el("dt", {}, "Id"), el("dd", {}, el("code", { class: "full-id" }, step.id))],
      [el("dt", {}, "Started"), el("dd", {}, when(step.created_at) +
        (t0 !== null ? " (+" + ms(Date.parse(step.created_at) - t0) + ")" : ""))],
    ];
    if (step.settled_at) facts.push([el("dt", {}, "Settled"), el("dd", {}, when(step.settled_at))]);
    if (step.attempts) facts.push([el("dt", {}, "Attempts"), el("dd", {}, String(step.attempts))]);
    if (step.last_error) {
      const last = step.last_error;
      facts.push([el("dt", {}, "Last error"), el("dd", { class: "last-error" },
        last.type + ": " + last.message + (last.next_attempt_at ? " (next attempt " + when(last.next_attempt_at) + ")" : ""))]);
    }
    if ("args" in step) {
      const call = Object.keys(step.kwargs || {}).length ? { args: step.args, kwargs: step.kwargs } : step.args;
      facts.push(valueBlock("Arguments", call, "args"));
    } else if (step.kind === "call") {
      facts.push([el("dt", {}, "Arguments"), el("dd", { class: "hint" }, "not recorded")]);
    }
    if ("result" in step) facts.push(valueBlock("Result", step.result, "result"));
    if (step.error) facts.push([el("dt", {}, "Error"), el("dd", { class: "error-value" }, step.error.type + ": " + step.error.message)]);
    return el("dl", { class: "facts step-facts" }, ...facts.flat());
  }

  function timeline(tree) {
    const rows = flatten(tree, 0, []);
    const now = Date.now();
    const t0 = Date.parse(tree.created_at);
    const ends = rows.map(({ step }) => (step.settled_at ? Date.parse(step.settled_at) : now));
    const span = Math.max(1, Math.max(...ends) - t0);
    const axis = el("div", { class: "axis" },
      el("span", {}, "0"), el("span", {}, ms(span / 2)), el("span", {}, ms(span)));
    const items = rows.map(({ step, depth }, n) => {
      const start = Date.parse(step.created_at) - t0;
      const end = ends[n] - t0;
      const left = Math.min(99, Math.max(0, (100 * start) / span));
      const width = Math.max(0.4, Math.min(100 - left, (100 * (end - start)) / span));
      const bar = el("span", { class: "step-bar " + step.status, style: "left:" + left.toFixed(2) + "%;width:" + width.toFixed(2) + "%" });
      const label = el("span", { class: "step" },
        el("span", { class: "label", style: "padding-left:" + (0.9 * depth).toFixed(1) + "rem" },
          el("span", { class: "kind" }, step.kind),
          el("span", { class: "name" }, step.function || step.id)),
        badge(step.status),
        el("span", { class: "took" }, step.settled_at ? ms(end - start) : "running " + ms(end - start)),
        el("span", { class: "track", title: "+" + ms(start) + ", " + ms(end - start) }, bar),
        ...(step.last_error ? [retrying(step)] : []));
      return el("details", { class: "step-row", "data-id": step.id, "data-status": step.status, "data-kind": step.kind },
        el("summary", {}, label), stepDetails(step, t0));
    });
    return el("div", { class: "waterfall" }, axis, ...items,
      tree.truncated ? el("p", { class: "hint" }, "Cut at 5,000 steps.") : null);
  }

  async function loadTree(id) {
    try {
      const tree = await api("/invocations/" + enc(id) + "/tree?values=true");
      if (id !== shownId) return;
      // Keep open what the reader opened.
      const open = new Set([...$("tree").querySelectorAll("details[open]")].map((d) => d.dataset.id));
      const drawn = timeline(tree);
      for (const d of drawn.querySelectorAll("details")) if (open.has(d.dataset.id)) d.open = true;
      $("tree").replaceChildren(drawn);
    } catch (e) {
      if (!(e instanceof Refused)) $("detail-problem").textContent = e.message;
    }
  }

  async function show(id) {
    if (detailStream) detailStream.abort();
    detailStream = null;
    shownId = id;
    $("detail-problem").textContent = "";
    $("tree").replaceChildren();
    for (const li of $("invocations").children) li.classList.toggle("current", li.dataset.id === id);
    if (!id) {
      $("detail-panel").hidden = true;
      return;
    }
    try {
      const doc = await api("/invocations/" + enc(id));
      if (id !== shownId) return;
      upsert(doc);
      render(doc);
      loadTree(id);
      if (doc.status === "pending") watch(id);
    } catch (e) {
      if (!(e instanceof Refused)) {
        $("detail-panel").hidden = false;
        $("detail-id").textContent = id;
        $("detail-problem").textContent = e.message;
      }
    }
  }

  async function watch(id) {
    const abort = new AbortController();
    detailStream = abort;
    refresh(id, abort.signal);
    try {
      await stream("/invocations/" + enc(id) + "/events", (event, doc) => {
        if (event === "status" && id === shownId) {
          render(doc);
          upsert(doc);
          loadTree(id);
        }
      }, abort.signal);
    } catch (e) {
      // aborted (another invocation shown) or refused: nothing to do
    }
  }

  // The stream says when it settles; attempts that fail meanwhile are read every few seconds.
  async function refresh(id, signal) {
    while (!signal.aborted) {
      await sleep(3000);
      if (signal.aborted || id !== shownId) return;
      try {
        const doc = await api("/invocations/" + enc(id));
        if (signal.aborted || id !== shownId) return;
        upsert(doc);
        render(doc);
        if (doc.status !== "pending") return;
        if (doc.last_error) loadTree(id);
      } catch (e) {
        // a refused or failed read: the stream still watches
      }
    }
  }

  $("cancel-button").addEventListener("click", async () => {
    if (!shownId) return;
    try {
      const doc = await post("/invocations/" + enc(shownId) + "/cancel");
      upsert(doc);
      render(doc);
      loadTree(doc.id);
    } catch (e) {
      if (!(e instanceof Refused)) $("detail-problem").textContent = e.message;
    }
  });

  $("rerun-button").addEventListener("click", async () => {
    if (!shownId) return;
    try {
      const doc = await post("/invocations/" + enc(shownId) + "/rerun");
      upsert(doc);
      location.hash = "#/invocations/" + enc(doc.id);
    } catch (e) {
      if (!(e instanceof Refused)) $("detail-problem").textContent = e.message;
    }
  });

  function route() {
    const match = /^#\/invocations\/(.+)$/.exec(location.hash);
    show(match ? decodeURIComponent(match[1]) : null);
  }
  window.addEventListener("hashchange", route);

  // ── schedules ─────────────────────────────────────────────────────────────

  async function loadSchedules() {
    let body;
    try {
      body = await api("/schedules");
    } catch (e) {
      return; // not allowed for this caller, or not served: no panel
    }
    const list = $("schedules");
    list.replaceChildren(
      ...body.schedules.map((s) =>
        el(
          "li",
          {},
          el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); ticks(s.id); } },
            el("span", { class: "name" }, s.id)),
          " ",
          el("code", {}, s.cron),
          " → ",
          el("span", { class: "name" }, s.function),
          s.next_runs && s.next_runs.length ? el("span", { class: "hint" }, " next " + when(s.next_runs[0])) : null
        )
      )
    );
    $("schedules-panel").hidden = body.schedules.length === 0;
  }

  async function ticks(id) {
    const body = await api("/schedules/" + enc(id));
    $("schedule-id").textContent = id;
    $("ticks").replaceChildren(...body.recent.map(row));
    $("schedule-ticks").hidden = false;
  }

  // ── start ─────────────────────────────────────────────────────────────────

  async function boot() {
    try {
      await loadFunctions();
    } catch (e) {
      if (!(e instanceof Refused)) $("start-error").textContent = e.message;
      return;
    }
    if (token || config.auth) $("token-button").hidden = !config.auth;
    follow();
    route();
    loadSchedules();
  }

  boot();
})();

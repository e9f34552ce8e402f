// Live turn view. State comes from synced traits (see widgets/turn.py for their meaning) and,
// for the rows, from custom messages: {type: "delta"} (changed rows whole, a growing row as the
// text appended at its offset, changed HTML) applied to the view's own copy, {type: "full"}
// (the whole copy, the answer to our {type: "resync"}); a growing prose row's HTML comes as a
// splice (its finished blocks kept, the rest replaced); the blocks/html/html_len traits are the
// full state at the end. Offsets and lengths are in UTF-16 units (a JS string's length). The Stop button sends {type: "stop"}; a tool row waiting for approval
// has Approve / Deny, which send {type: "approve" | "deny", call_id}. Prose arrives as sanitised
// HTML rendered in Python (markdown-it-py); until a row's HTML arrives its text is shown escaped.
// A finished turn is replaced by static HTML by the kernel, so this view only runs live turns.
// When the kernel that runs the turn is gone (restarted, shut down, dead: kernel.js) before the
// turn ended, the view stops: status "kernel gone", no Stop, no clock, the rows it had kept, and
// the cut-turn note under it (widgets/snapshot.py cut_turn_note) shown.

const LASH_LIVE = new Set(["starting", "running", "stopping"]);
const LASH_ICONS = { running: "⟳", done: "✓", failed: "✗", cancelled: "■", waiting: "?", denied: "⊘", cut: "■" };

// Apply one delta message to a view's copy {blocks, html, html_len}. False when it does not
// fit the copy (an append at another offset): the view then asks for a resync.
export function lashApplyDelta(copy, d) {
  if (d.reset) copy.blocks = d.reset.map((b) => ({ ...b }));
  for (const [i, row] of d.rows || []) {
    if (i > copy.blocks.length) return false;
    copy.blocks[i] = { ...row };
  }
  for (const [i, offset, text] of d.append || []) {
    const b = copy.blocks[i];
    if (!b || typeof b.text !== "string" || b.text.length !== offset) return false;
    b.text += text;
  }
  if (typeof d.count === "number" && copy.blocks.length !== d.count) return false;
  Object.assign(copy.html, d.html || {});
  // a prose row's HTML: keep its first `keep` units (its finished blocks), then the new part
  for (const [cid, was, keep, text] of d.html_splice || []) {
    const old = copy.html[cid];
    if (typeof old !== "string" || old.length !== was) return false;
    copy.html[cid] = old.slice(0, keep) + text;
  }
  Object.assign(copy.html_len, d.html_len || {});
  return true;
}

// What a view does with one custom message from the kernel; `view` is {copy, seq, waiting}
// (seq: the last delta its copy holds, 0 for the traits' state at the turn's start). Returns
// "draw" (the copy changed), "resync" (ask for the whole state) or "" (nothing to do). A
// delta that follows the copy is applied even while a resync is unanswered: ipykernel 6.x
// answers it only after the cell, and dropping deltas until then showed nothing live.
export function lashViewMessage(view, msg) {
  if (msg.type === "full") {
    view.copy = lashCopyOf(msg);
    view.seq = typeof msg.seq === "number" ? msg.seq : view.seq;
    view.waiting = false;
    return "draw";
  }
  if (msg.type !== "delta") return "";
  if (typeof msg.seq === "number") {
    if (msg.seq <= view.seq) return ""; // a full copy already holds it
    if (msg.seq !== view.seq + 1) return "resync"; // one went by before this view opened
  } else if (view.waiting) {
    return "";
  }
  if (!lashApplyDelta(view.copy, msg)) return "resync";
  if (typeof msg.seq === "number") view.seq = msg.seq;
  return "draw";
}

export function lashCopyOf(state) {
  return {
    blocks: (state.blocks || []).map((b) => ({ ...b })),
    html: { ...(state.html || {}) },
    html_len: { ...(state.html_len || {}) },
  };
}

function lashEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function lashJson(v) {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  try { return JSON.stringify(v, null, 2); } catch (e) { return String(v); }
}

function lashOutcomeClass(outcome) {
  if (!outcome) return "";
  if (outcome.startsWith("finished")) return "lash-ok";
  if (outcome === "stopped: cancelled") return "lash-cancelled";
  return "lash-bad";
}

// attachment cards (widgets/attachments.py): a thumbnail only from a data:image URL made in
// the kernel, else a table preview; text always as textContent
function lashAttachments(cards) {
  const box = lashEl("div", "lash-attachments");
  for (const c of cards || []) {
    const fig = lashEl("figure", "lash-attachment");
    const thumb = String(c.thumb || "");
    if (/^data:image\/(png|jpeg);base64,/.test(thumb)) {
      const img = lashEl("img", "lash-thumb");
      img.src = thumb;
      img.alt = c.label || "";
      fig.append(img);
    } else if (c.table) {
      fig.append(lashEl("pre", "lash-table-preview", c.table));
    }
    const dims = c.width && c.height ? ", " + c.width + "x" + c.height : "";
    const size = c.byte_len < 1024 ? c.byte_len + " B" : c.byte_len < 1048576
      ? (c.byte_len / 1024).toFixed(1) + " KB" : (c.byte_len / 1048576).toFixed(1) + " MB";
    fig.append(lashEl("figcaption", null,
      (c.label ? c.label + " · " : "") + c.media_type + ", " + size + dims));
    box.append(fig);
  }
  return box;
}

function lashApprovalNote(a) {
  if (!a || !a.state) return "";
  if (a.state === "pending") return "waiting for approval";
  return a.state + (a.by ? " by " + a.by : "") + (a.reason ? ": " + a.reason : "");
}

// Approve / Deny under a waiting row; `sent` remembers a click until the decision arrives
function lashApprovalBar(b, sent, send) {
  const bar = lashEl("div", "lash-approval");
  bar.dataset.callId = b.call_id || "";
  bar.append(lashEl("span", "lash-approval-ask", `run ${b.name || "(unnamed tool)"}?`));
  for (const [kind, label] of [["approve", "✓ Approve"], ["deny", "✗ Deny"]]) {
    const btn = lashEl("button", "lash-" + kind, label);
    btn.type = "button";
    btn.disabled = !!sent[b.call_id];
    // the bar on the page at the click: a redraw keeps the bar shown, not this one (ADR 206)
    btn.addEventListener("click", () => send(kind, b.call_id, btn.parentElement));
    bar.append(btn);
  }
  if (sent[b.call_id]) bar.append(lashEl("span", "lash-approval-sent", sent[b.call_id] + " sent…"));
  return bar;
}

function lashToolRow(b, open) {
  const d = lashEl("details", "lash-tool lash-tool-" + b.status);
  d.dataset.cid = b.cid;
  if (open) d.open = true;
  const s = lashEl("summary");
  s.append(lashEl("span", "lash-tool-icon", LASH_ICONS[b.status] || "•"));
  s.append(lashEl("span", "lash-tool-name", b.name || "(unnamed tool)"));
  const args = lashJson(b.args);
  s.append(lashEl("span", "lash-tool-args", args.length > 80 ? args.slice(0, 77) + "…" : args));
  s.append(lashEl("span", "lash-tool-status", b.status));
  if (b.printed) s.append(lashEl("span", "lash-tool-said", "· printed"));
  const note = b.status === "cut" ? "" : lashApprovalNote(b.approval);
  if (note) s.append(lashEl("span", "lash-tool-approval", note));
  if (b.duration_ms !== null && b.duration_ms !== undefined) {
    s.append(lashEl("span", "lash-tool-dur", Math.round(b.duration_ms) + " ms"));
  } else if (b.status === "running") {
    s.append(lashEl("span", "lash-tool-dur lash-tool-clock"));
  }
  d.append(s);
  d.append(lashEl("pre", "lash-tool-argsfull", args));
  if (b.printed) d.append(lashEl("div", "lash-tool-printed-head", "printed"), lashEl("pre", "lash-tool-printed", b.printed));
  if (b.output !== null && b.output !== undefined) d.append(lashEl("pre", "lash-tool-output", lashJson(b.output)));
  return d;
}

// A redraw keeps the nodes on the page: the rows drawn anew (`next`, off the page) are folded
// into the ones shown (`cur`) node by node, a node kept while it is the same kind (tag, row id)
// and only what changed written to it (ADR 206). Drawn anew, a tool's box was a new element at
// its top: the user's scroll was carried over only when it was read before the redraw (a wheel
// still scrolling, or a scroll the page had not yet been told of, was lost, ADR 205), and the
// text they had selected, a click opening a row just before, went with the old nodes. A
// button is always the new one (its click handler is). A row's open state is the page's (the
// user's click), never the redraw's.
function lashSameNode(a, b) {
  if (a.nodeType !== b.nodeType) return false;
  if (a.nodeType !== Node.ELEMENT_NODE) return true;
  return a.tagName === b.tagName && a.tagName !== "BUTTON" &&
    a.dataset.cid === b.dataset.cid && a.dataset.callId === b.dataset.callId;
}

function lashMorph(cur, next) {
  if (cur.nodeType !== Node.ELEMENT_NODE) {
    const was = cur.nodeValue, now = next.nodeValue;
    // appended text (a printing tool's box): appendData keeps a selection in it
    if (now.length > was.length && now.startsWith(was)) cur.appendData(now.slice(was.length));
    else if (now !== was) cur.nodeValue = now;
    return;
  }
  const own = (name) => name === "open" && cur.tagName === "DETAILS";
  for (const { name } of [...cur.attributes]) {
    if (!own(name) && !next.hasAttribute(name)) cur.removeAttribute(name);
  }
  for (const { name, value } of [...next.attributes]) {
    if (!own(name) && cur.getAttribute(name) !== value) cur.setAttribute(name, value);
  }
  lashMorphChildren(cur, next);
}

function lashMorphChildren(cur, next) {
  const kids = [...next.childNodes];
  kids.forEach((k, i) => {
    const c = cur.childNodes[i];
    if (!c) cur.append(k);
    else if (lashSameNode(c, k)) lashMorph(c, k);
    else c.replaceWith(k);
  });
  while (cur.childNodes.length > kids.length) cur.lastChild.remove();
}

// the boxes of the rows (what a tool printed, its output, a cell's output) scrolled away from
// their top, by row id and box: one read to its end follows the new lines, as a terminal does;
// a box that had to be made anew (its row changed kind) gets the same place
function lashScrolls(body) {
  const at = {};
  for (const el of body.querySelectorAll("[data-cid] > pre")) {
    if (el.scrollTop > 0) {
      at[el.parentElement.dataset.cid + " " + el.className] =
        { el, top: el.scrollTop, end: el.scrollTop + el.clientHeight >= el.scrollHeight - 2 };
    }
  }
  return at;
}

function lashRestoreScrolls(body, at) {
  for (const el of body.querySelectorAll("[data-cid] > pre")) {
    const s = at[el.parentElement.dataset.cid + " " + el.className];
    if (!s) continue;
    if (s.el !== el) el.scrollTop = s.end ? el.scrollHeight : s.top;
    else if (s.end && el.scrollTop + el.clientHeight < el.scrollHeight - 2) el.scrollTop = el.scrollHeight;
  }
}

function lashCellRow(b) {
  // code mode: the cell's code, its output as it streams, its error and PNG images
  const d = lashEl("details", "lash-cell lash-cell-" + b.status);
  d.dataset.cid = b.cid;
  d.open = true;
  const s = lashEl("summary");
  s.append(lashEl("span", "lash-tool-name", "cell " + b.cell));
  s.append(lashEl("span", "lash-tool-status", b.status));
  if (b.duration_ms !== null && b.duration_ms !== undefined) {
    s.append(lashEl("span", "lash-tool-dur", Math.round(b.duration_ms) + " ms"));
  }
  d.append(s, lashEl("pre", "lash-cell-code", b.code || ""));
  if (b.output) d.append(lashEl("pre", "lash-cell-output", b.output));
  if (b.error) d.append(lashEl("pre", "lash-cell-error", b.error));
  if (b.note) d.append(lashEl("div", "lash-cell-note", b.note));
  for (const out of b.displays || []) {
    const png = out["image/png"];
    if (typeof png === "string" && /^[A-Za-z0-9+\/=\s]+$/.test(png)) {
      const img = lashEl("img", "lash-cell-image");
      img.alt = "cell output";
      img.src = "data:image/png;base64," + png.replace(/\s/g, "");
      d.append(img);
    }
  }
  return d;
}

function lashBlock(b, openState, html, htmlLen, approval) {
  if (b.kind === "prose") {
    const div = lashEl("div", "lash-prose" + (b.interrupted ? " lash-interrupted" : ""));
    const done = html[b.cid] !== undefined ? (htmlLen[b.cid] || 0) : 0;
    if (html[b.cid] !== undefined) {
      div.innerHTML = html[b.cid]; // rendered and sanitised by markdown-it-py (html=False)
    }
    if (done < b.text.length) div.append(lashEl("span", "lash-plain", b.text.slice(done)));
    if (b.interrupted) div.append(lashEl("div", "lash-mark", "■ interrupted: the turn was stopped here"));
    return div;
  }
  if (b.kind === "reasoning") {
    const d = lashEl("details", "lash-reasoning");
    d.dataset.cid = b.cid;
    if (openState[b.cid]) d.open = true;
    d.append(lashEl("summary", null, "reasoning"));
    d.append(lashEl("div", "lash-reasoning-text", b.text));
    return d;
  }
  // the pictures a tool returned (thumbnails made in the kernel), under its row (ADR 232)
  const pics = b.kind === "tool" && b.images && b.images.length ? [lashAttachments(b.images)] : [];
  if (b.kind === "tool" && b.child) {
    // a tool call that runs a child session (run_child): its turn nests under the row
    const wrap = lashEl("div", "lash-tool-wrap");
    wrap.append(lashToolRow(b, openState[b.cid]), ...pics, lashChild(b.child, openState));
    return wrap;
  }
  if (b.kind === "tool") {
    const row = lashToolRow(b, openState[b.cid]);
    const live = b.status === "waiting" && approval && approval.live();
    if (!live && !pics.length) return row;
    const wrap = lashEl("div", "lash-tool-wrap");
    wrap.append(row, ...(live ? [lashApprovalBar(b, approval.sent, approval.send)] : pics));
    return wrap;
  }
  if (b.kind === "cell") {
    // a cell's llm_query calls are child turns: they nest under the cell row
    const row = lashCellRow(b);
    for (const k of b.children || []) row.append(lashChild(k, openState));
    return row;
  }
  return lashEl("div", "lash-" + b.kind, b.text);
}

function lashChild(c, openState) {
  const child = lashEl("div", "lash-child");
  const head = "child session " + (c.session_id || "") + (c.outcome ? " · " + c.outcome : "");
  child.append(lashEl("div", "lash-child-head", head));
  for (const cb of c.blocks || []) child.append(lashBlock(cb, openState, {}, {}));
  return child;
}

function lashUsage(u, iterations, elapsed, cost) {
  const parts = [];
  if (u && Object.keys(u).length) {
    parts.push(`${u.input_tokens || 0} in`, `${u.output_tokens || 0} out`);
    if (u.cache_read_input_tokens) parts.push(`${u.cache_read_input_tokens} cache read`);
    if (u.cache_write_input_tokens) parts.push(`${u.cache_write_input_tokens} cache write`);
    if (u.reasoning_output_tokens) parts.push(`${u.reasoning_output_tokens} reasoning`);
    if (u.estimated) parts.push("estimated");
  }
  if (iterations) parts.push(`${iterations} model call${iterations === 1 ? "" : "s"}`);
  if (elapsed) parts.push(`${(elapsed / 1000).toFixed(1)} s`);
  if (cost && cost.text) parts.push(cost.text);
  return parts.join(" · ");
}

function render({ model, el }) {
  const root = lashEl("div", "lash-turn");
  const head = lashEl("div", "lash-head");
  const title = lashEl("span", "lash-title");
  const status = lashEl("span", "lash-status");
  const stop = lashEl("button", "lash-stop", "■ Stop");
  stop.type = "button";
  stop.title = "Cancel the running turn";
  head.append(title, status, stop);
  const prompt = lashEl("div", "lash-prompt");
  let atts = lashAttachments([]);
  const body = lashEl("div", "lash-body");
  const retry = lashEl("div", "lash-retry");
  const foot = lashEl("div", "lash-foot");
  const usage = lashEl("span", "lash-usage");
  const badge = lashEl("span", "lash-outcome");
  foot.append(usage, badge);
  root.append(head, prompt, atts, body, retry, foot);
  el.append(root);

  // the kernel's elapsed time, extrapolated in the browser between flushes (a tool may run
  // for seconds without any flush); stopped once the status is final
  let elapsedAt = performance.now();
  let toolStarts = {};
  let noAnswer = null;
  let gone = false; // the kernel that ran the turn is gone (lashWatchKernel, at the end)
  let goneWhy = "";
  const live = () => !gone && LASH_LIVE.has(model.get("status"));
  stop.addEventListener("click", () => {
    stop.disabled = true;
    status.textContent = "stopping";
    try {
      model.send({ type: "stop" });
    } catch (e) { // restored from saved widget state: no comm, no kernel
      status.textContent = "kernel not connected: Stop was not delivered";
      return;
    }
    noAnswer = setTimeout(() => {
      if (model.get("status") !== "stopping" && live()) {
        status.textContent = "kernel not connected: Stop was not delivered";
      }
    }, 5000);
  });

  // Approve / Deny: like Stop, a click without a kernel says so instead of failing silently
  const approval = {
    sent: {},
    live: () => live() && model.get("status") !== "stopping",
    send: (kind, callId, bar) => {
      try {
        model.send({ type: kind, call_id: callId });
      } catch (e) {
        bar.append(lashEl("span", "lash-approval-sent", "kernel not connected: not delivered"));
        return;
      }
      approval.sent[callId] = kind;
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
      bar.append(lashEl("span", "lash-approval-sent", kind + " sent…"));
    },
  };

  let copy = null; // the rows shown (see fromTraits below)
  const openState = {};
  body.addEventListener("toggle", (ev) => {
    const t = ev.target;
    if (t && t.dataset && t.dataset.cid) openState[t.dataset.cid] = t.open;
  }, true);

  const drawHead = () => {
    const sid = model.get("session_id");
    const tid = model.get("turn_id");
    title.textContent = "lash" + (sid ? " · " + sid : "") + (tid ? " · " + tid : "");
    const st = gone ? "gone" : model.get("status");
    const asking = st === "running" && copy !== null && copy.blocks.some((b) => b.status === "waiting");
    status.textContent = gone ? `kernel gone${goneWhy ? ` (${goneWhy})` : ""}: the turn was cut`
      : asking ? "waiting for approval" : st;
    status.className = "lash-status lash-status-" + st.replace(/[^a-z]/g, "");
    stop.style.display = live() ? "" : "none";
    stop.disabled = st === "stopping";
    const p = model.get("prompt");
    prompt.textContent = p || "";
    prompt.style.display = p ? "" : "none";
  };
  // the rows shown: the traits' full state, then the deltas applied to this copy
  // seq: the last delta the copy holds (the traits hold the state before the first one);
  // waiting: a resync was asked and its {type: "full"} has not come (lashViewMessage)
  const view = { copy: null, seq: 0, waiting: false };
  const fromTraits = () => {
    copy = view.copy = lashCopyOf({ blocks: model.get("blocks"), html: model.get("html"), html_len: model.get("html_len") });
  };
  fromTraits();
  const resync = () => {
    if (view.waiting) return;
    view.waiting = true;
    try { model.send({ type: "resync" }); } catch (e) { view.waiting = false; /* saved state, no kernel */ }
  };
  const drawBody = () => {
    const blocks = copy.blocks;
    const html = copy.html;
    const htmlLen = copy.html_len;
    const frag = document.createDocumentFragment();
    const now = performance.now();
    const starts = {};
    for (const b of blocks) {
      frag.append(lashBlock(b, openState, html, htmlLen, approval));
      if (b.kind === "tool" && b.status === "running") starts[b.cid] = toolStarts[b.cid] || now;
    }
    toolStarts = starts;
    const scrolled = lashScrolls(body);
    const next = lashEl("div");
    next.append(frag);
    lashMorphChildren(body, next);
    lashRestoreScrolls(body, scrolled);
    drawHead(); // "waiting for approval" follows the rows
    if (!blocks.length && live()) {
      // asked while another turn of the session ran: it starts when that one ends (ADR 191)
      const behind = model.get("queued_behind") && model.get("status") === "starting";
      body.append(lashEl("span", "lash-wait", behind
        ? "waiting for the turn running before it in this session to end…" : "waiting for the model…"));
    }
  };
  const drawFoot = () => {
    const retries = model.get("retries") || [];
    if (retries.length) {
      const r = retries[retries.length - 1];
      retry.textContent = `retry ${r.attempt}/${r.max_attempts} after ${r.wait_seconds}s: ${r.reason}` +
        (retries.length > 1 ? ` (${retries.length} retries)` : "");
      retry.style.display = "";
    } else {
      retry.style.display = "none";
    }
    let elapsed = model.get("elapsed_ms");
    if (live()) elapsed += performance.now() - elapsedAt;
    else if (gone) elapsed = goneElapsed;
    usage.textContent = lashUsage(model.get("usage"), model.get("iterations"), elapsed, model.get("cost"));
    const o = model.get("outcome");
    badge.textContent = o;
    badge.className = "lash-outcome " + lashOutcomeClass(o);
    badge.style.display = o ? "" : "none";
  };
  const tick = () => {
    if (!live()) return;
    drawFoot();
    const now = performance.now();
    for (const c of body.querySelectorAll(".lash-tool-running")) {
      const t0 = toolStarts[c.dataset.cid];
      const clock = c.querySelector(".lash-tool-clock");
      if (clock && t0 !== undefined) clock.textContent = `${((now - t0) / 1000).toFixed(1)} s`;
    }
  };
  const timer = setInterval(tick, 200);
  const drawAll = () => { drawHead(); drawBody(); drawFoot(); };
  drawAll();
  if (LASH_LIVE.has(model.get("status"))) resync(); // deltas so far went to earlier views
  model.on("msg:custom", (msg) => {
    if (!msg || !live()) return;
    const did = lashViewMessage(view, msg);
    copy = view.copy;
    if (did === "resync") resync();
    if (did === "draw") drawBody();
  });
  model.on("change:status", () => {
    if (gone) return; // no kernel sends this: keep the rows as they were
    if (noAnswer) { clearTimeout(noAnswer); noAnswer = null; }
    // final: the exact full state came as the final {type: "full"} (the traits hold no rows,
    // ADR 182); a saved state from before that holds them
    if (!LASH_LIVE.has(model.get("status")) && (model.get("blocks") || []).length) fromTraits();
    drawHead(); drawBody(); drawFoot();
  });
  model.on("change:queued_behind", drawBody);
  model.on("change:session_id", drawHead);
  model.on("change:turn_id", drawHead);
  model.on("change:prompt", drawHead);
  const drawAttachments = () => {
    const next = lashAttachments(model.get("attachments"));
    atts.replaceWith(next);
    atts = next;
  };
  drawAttachments();
  model.on("change:attachments", drawAttachments);
  const traitsChanged = () => { fromTraits(); drawBody(); };
  model.on("change:blocks", traitsChanged);
  model.on("change:html", traitsChanged);
  model.on("change:html_len", traitsChanged);
  model.on("change:usage", drawFoot);
  model.on("change:cost", drawFoot);
  model.on("change:retries", drawFoot);
  model.on("change:outcome", drawFoot);
  model.on("change:iterations", drawFoot);
  model.on("change:elapsed_ms", () => { elapsedAt = performance.now(); drawFoot(); });
  // hide the cut-turn note displayed after this widget (widgets/snapshot.py cut_turn_note)
  // while the view lives; a style rule, as update_display re-creates the note's DOM
  const noteId = model.get("panel_id");
  const noteStyle = document.createElement("style");
  const noteSel = noteId ? `.lash-cut[data-panel="${CSS.escape(noteId)}"]` : "";
  if (noteId) {
    noteStyle.textContent = `.jp-OutputArea-child:has(${noteSel}) { display: none; } ${noteSel} { display: none; }`;
    document.head.append(noteStyle);
  }
  // the kernel is gone mid-turn: freeze the view as it is and show the note; a finished turn's
  // view (its record is on the way, or already drawn) has nothing to stop
  let goneElapsed = 0;
  const unwatch = lashWatchKernel(model, (why) => {
    if (!LASH_LIVE.has(model.get("status"))) return;
    goneWhy = why; // what the page saw end the kernel (kernel.js), as far as it can tell
    goneElapsed = model.get("elapsed_ms") + (performance.now() - elapsedAt);
    gone = true;
    if (noAnswer) { clearTimeout(noAnswer); noAnswer = null; }
    // a tool or cell that was running (or waiting for approval) ends with its kernel: "cut"
    for (const b of copy.blocks) {
      if ((b.kind === "tool" || b.kind === "cell") && (b.status === "running" || b.status === "waiting")) b.status = "cut";
    }
    // the note shows; its title and prompt would repeat this view's
    if (noteSel) noteStyle.textContent = `${noteSel} .lash-head, ${noteSel} .lash-prompt { display: none; }`;
    drawAll();
  });
  return () => { clearInterval(timer); noteStyle.remove(); unwatch(); };
}

export default { render };

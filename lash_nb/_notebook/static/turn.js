// Live turn view. State comes only from synced traits (see widgets/turn.py for their meaning);
// the Stop button sends {type: "stop"}. Prose arrives as sanitised HTML rendered in Python
// (markdown-it-py) in the `html` trait; until a row's HTML arrives its text is shown escaped.
// A finished turn is replaced by static HTML by the kernel, so this view only runs live turns.

const LASH_LIVE = new Set(["starting", "running", "stopping"]);
const LASH_ICONS = { running: "⟳", done: "✓", failed: "✗", cancelled: "■" };

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

function lashToolRow(b, open) {
  const d = lashEl("details", "lash-tool lash-tool-" + b.status);
  d.dataset.cid = b.cid;
  if (open) d.open = true;
  const s = lashEl("summary");
  s.append(lashEl("span", "lash-tool-icon", LASH_ICONS[b.status] || "•"));
  s.append(lashEl("span", "lash-tool-name", b.name || "tool"));
  const args = lashJson(b.args);
  s.append(lashEl("span", "lash-tool-args", args.length > 80 ? args.slice(0, 77) + "…" : args));
  s.append(lashEl("span", "lash-tool-status", b.status));
  if (b.duration_ms !== null && b.duration_ms !== undefined) {
    s.append(lashEl("span", "lash-tool-dur", Math.round(b.duration_ms) + " ms"));
  } else if (b.status === "running") {
    s.append(lashEl("span", "lash-tool-dur lash-tool-clock"));
  }
  d.append(s);
  d.append(lashEl("pre", "lash-tool-argsfull", args));
  if (b.output !== null && b.output !== undefined) d.append(lashEl("pre", "lash-tool-output", lashJson(b.output)));
  return d;
}

function lashBlock(b, openState, html, htmlLen) {
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
  if (b.kind === "tool") return lashToolRow(b, openState[b.cid]);
  return lashEl("div", "lash-" + b.kind, b.text);
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
  const body = lashEl("div", "lash-body");
  const retry = lashEl("div", "lash-retry");
  const foot = lashEl("div", "lash-foot");
  const usage = lashEl("span", "lash-usage");
  const badge = lashEl("span", "lash-outcome");
  foot.append(usage, badge);
  root.append(head, prompt, body, retry, foot);
  el.append(root);

  // the kernel's elapsed time, extrapolated in the browser between flushes (a tool may run
  // for seconds without any flush); stopped once the status is final
  let elapsedAt = performance.now();
  let toolStarts = {};
  let noAnswer = null;
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
      if (model.get("status") !== "stopping" && LASH_LIVE.has(model.get("status"))) {
        status.textContent = "kernel not connected: Stop was not delivered";
      }
    }, 5000);
  });

  const openState = {};
  body.addEventListener("toggle", (ev) => {
    const t = ev.target;
    if (t && t.dataset && t.dataset.cid) openState[t.dataset.cid] = t.open;
  }, true);

  const drawHead = () => {
    const sid = model.get("session_id");
    const tid = model.get("turn_id");
    title.textContent = "lash" + (sid ? " · " + sid : "") + (tid ? " · " + tid : "");
    const st = model.get("status");
    status.textContent = st;
    status.className = "lash-status lash-status-" + st.replace(/[^a-z]/g, "");
    stop.style.display = LASH_LIVE.has(st) ? "" : "none";
    stop.disabled = st === "stopping";
    const p = model.get("prompt");
    prompt.textContent = p || "";
    prompt.style.display = p ? "" : "none";
  };
  const drawBody = () => {
    const blocks = model.get("blocks") || [];
    const html = model.get("html") || {};
    const htmlLen = model.get("html_len") || {};
    const frag = document.createDocumentFragment();
    const now = performance.now();
    const starts = {};
    for (const b of blocks) {
      frag.append(lashBlock(b, openState, html, htmlLen));
      if (b.kind === "tool" && b.status === "running") starts[b.cid] = toolStarts[b.cid] || now;
    }
    toolStarts = starts;
    body.replaceChildren(frag);
    if (!blocks.length && LASH_LIVE.has(model.get("status"))) body.append(lashEl("span", "lash-wait", "waiting for the model…"));
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
    if (LASH_LIVE.has(model.get("status"))) elapsed += performance.now() - elapsedAt;
    usage.textContent = lashUsage(model.get("usage"), model.get("iterations"), elapsed, model.get("cost"));
    const o = model.get("outcome");
    badge.textContent = o;
    badge.className = "lash-outcome " + lashOutcomeClass(o);
    badge.style.display = o ? "" : "none";
  };
  const tick = () => {
    if (!LASH_LIVE.has(model.get("status"))) return;
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
  model.on("change:status", () => {
    if (noAnswer) { clearTimeout(noAnswer); noAnswer = null; }
    drawHead(); drawBody(); drawFoot();
  });
  model.on("change:session_id", drawHead);
  model.on("change:turn_id", drawHead);
  model.on("change:prompt", drawHead);
  model.on("change:blocks", drawBody);
  model.on("change:html", drawBody);
  model.on("change:html_len", drawBody);
  model.on("change:usage", drawFoot);
  model.on("change:cost", drawFoot);
  model.on("change:retries", drawFoot);
  model.on("change:outcome", drawFoot);
  model.on("change:iterations", drawFoot);
  model.on("change:elapsed_ms", () => { elapsedAt = performance.now(); drawFoot(); });
  return () => clearInterval(timer);
}

export default { render };

// Queue: pending batches, a cancel button per batch, a drain button with progress and the
// turns the drain ran (their HTML comes rendered and sanitised from Python). While it drains:
// a Stop button ({type: "stop"}), and Approve / Deny for each tool call of the running turn
// that waits for approval ({type: "decide", call_id, ok}; ADR 212).

function render({ model, el }) {
  const root = pEl("div", "lash-panel lash-queue");
  const head = pEl("div", "lash-panel-head");
  const title = pEl("span");
  const status = pEl("span", "lash-muted");
  const drain = pEl("button", "lash-drain", "▶ Drain");
  drain.title = "Run the pending batches as turns now";
  const say = (text) => { status.textContent = text; };
  let gone = false; // the kernel that owns the queue is gone: no drain, no cancel
  drain.addEventListener("click", () => {
    if (drain.disabled) return;
    drain.disabled = true;
    pSend(model, { type: "drain" }, say);
  });
  const refresh = pEl("button", null, "↻");
  refresh.title = "Reload the queue";
  refresh.addEventListener("click", () => pSend(model, { type: "refresh" }, say));
  const stop = pEl("button", "lash-stop", "■ Stop");
  stop.title = "Stop the running turn and the drain";
  stop.addEventListener("click", () => {
    stop.disabled = true;
    pSend(model, { type: "stop" }, say);
  });
  head.append(title, status, drain, stop, refresh);
  const asks = pEl("div", "lash-asks");
  const progress = pEl("div", "lash-progress");
  const table = pEl("table", "lash-table");
  const ran = pEl("div", "lash-ran");
  root.append(head, asks, progress, table, ran);
  el.append(root);
  const unhide = pHideSnapshot(model);

  const draw = () => {
    const batches = model.get("batches") || [];
    const sid = model.get("session_id");
    // the words of snapshot.queue_counts: a parked (failed) or claimed batch is not pending
    const counts = { pending: 0, claimed: 0, failed: 0 };
    for (const b of batches) {
      const s = b.status || (b.claimed ? "claimed" : "pending");
      counts[s in counts ? s : "pending"] += 1;
    }
    const extra = ["claimed", "failed"].filter((k) => counts[k]).map((k) => `, ${counts[k]} ${k}`).join("");
    title.textContent = `Queue${sid ? " · " + sid : ""}: ${counts.pending} pending${extra}`;
    const st = model.get("status") || "";
    const draining = model.get("draining") && !gone;
    status.textContent = gone ? PANEL_GONE : st;
    drain.disabled = gone || draining || !counts.pending || st.endsWith("…");
    drain.textContent = draining ? "draining…" : "▶ Drain";
    stop.style.display = draining ? "" : "none";
    if (gone) stop.disabled = true; // no control that cannot work (hidden too: a kept view)
    else if (!draining) stop.disabled = false;
    refresh.disabled = gone;
    const p = model.get("progress") || {};
    progress.textContent = p.total ? `${p.done || 0} of ${p.total} batches done` : "";
    progress.style.display = p.total ? "" : "none";
    const rows = [];
    const hr = pEl("tr");
    for (const h of ["batch", "input", "delivery", "slot", "merge key", "status", ""]) hr.append(pEl("th", null, h));
    rows.push(hr);
    for (const b of batches) {
      const tr = pEl("tr", b.status ? "lash-row-" + b.status : null);
      tr.dataset.batch = b.batch_id;
      const cancel = pEl("button", "lash-cancel", "✕ cancel");
      cancel.disabled = gone || b.claimed || draining;
      cancel.title = b.claimed ? "already claimed: a drain or a worker runs it" : "Cancel this batch";
      cancel.addEventListener("click", () => { cancel.disabled = true; pSend(model, { type: "cancel", batch_id: b.batch_id }, say); });
      const c0 = pEl("td"); c0.append(pEl("code", null, b.batch_id));
      const c6 = pEl("td"); c6.append(cancel);
      const state = (b.status || (b.claimed ? "claimed" : "pending")) + (b.error ? `: ${b.error}` : "");
      tr.append(c0, pEl("td", null, b.text), pEl("td", null, b.delivery_policy),
        pEl("td", null, b.slot_policy), pEl("td", null, b.merge_key || ""), pEl("td", null, state), c6);
      rows.push(tr);
    }
    table.replaceChildren(...rows);
    table.style.display = batches.length ? "" : "none";
  };
  const drawRan = () => {
    const turns = model.get("ran") || [];
    const frag = document.createDocumentFragment();
    for (const t of turns) {
      const div = pEl("div", "lash-ran-turn");
      div.innerHTML = t.html || ""; // built by snapshot.turn_html: escaped text, sanitised prose
      frag.append(div);
    }
    ran.replaceChildren(frag);
  };
  const drawAsks = () => {
    const bars = [];
    for (const q of (gone ? [] : model.get("questions") || [])) {
      const bar = pEl("div", "lash-approval");
      bar.dataset.call = q.call_id;
      bar.append(pEl("span", "lash-approval-ask", `run ${q.tool || "(unnamed tool)"}? ${q.args || ""}`));
      for (const [label, cls, ok] of [["Approve", "lash-approve", true], ["Deny", "lash-deny", false]]) {
        const b = pEl("button", cls, label);
        b.addEventListener("click", () => {
          for (const x of bar.querySelectorAll("button")) x.disabled = true;
          bar.append(pEl("span", "lash-approval-sent", `${ok ? "approve" : "deny"} sent…`));
          pSend(model, { type: "decide", call_id: q.call_id, ok }, say);
        });
        bar.append(b);
      }
      bars.push(bar);
    }
    asks.replaceChildren(...bars);
  };
  draw();
  drawRan();
  drawAsks();
  model.on("change:questions", drawAsks);
  for (const k of ["batches", "status", "session_id", "draining", "progress"]) model.on(`change:${k}`, draw);
  model.on("change:ran", drawRan);
  const unwatch = lashWatchKernel(model, () => { gone = true; draw(); drawAsks(); });
  return () => { unhide(); unwatch(); };
}

export default { render };

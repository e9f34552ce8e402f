// Queue: pending batches, a cancel button per batch, a drain button.

function qEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function render({ model, el }) {
  const root = qEl("div", "lash-panel lash-queue");
  const head = qEl("div", "lash-panel-head");
  const title = qEl("span");
  const status = qEl("span", "lash-muted");
  const drain = qEl("button", "lash-drain", "▶ Drain");
  drain.title = "Run the pending batches as turns now";
  drain.addEventListener("click", () => { drain.disabled = true; model.send({ type: "drain" }); });
  const refresh = qEl("button", null, "↻");
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  head.append(title, status, drain, refresh);
  const table = qEl("table", "lash-table");
  root.append(head, table);
  el.append(root);

  const draw = () => {
    const batches = model.get("batches") || [];
    const sid = model.get("session_id");
    title.textContent = `Queue${sid ? " · " + sid : ""}: ${batches.length} pending`;
    const st = model.get("status") || "";
    status.textContent = st;
    drain.disabled = !batches.length || st.endsWith("…");
    const rows = [];
    const hr = qEl("tr");
    for (const h of ["batch", "input", "delivery", "slot", "merge key", ""]) hr.append(qEl("th", null, h));
    rows.push(hr);
    for (const b of batches) {
      const tr = qEl("tr");
      tr.dataset.batch = b.batch_id;
      const cancel = qEl("button", "lash-cancel", "✕ cancel");
      cancel.disabled = b.claimed;
      cancel.title = b.claimed ? "already claimed by a running drain" : "Cancel this batch";
      cancel.addEventListener("click", () => { cancel.disabled = true; model.send({ type: "cancel", batch_id: b.batch_id }); });
      const c0 = qEl("td"); c0.append(qEl("code", null, b.batch_id));
      const c5 = qEl("td"); c5.append(cancel);
      tr.append(c0, qEl("td", null, b.text), qEl("td", null, b.delivery_policy),
        qEl("td", null, b.slot_policy), qEl("td", null, b.merge_key || ""), c5);
      rows.push(tr);
    }
    table.replaceChildren(...rows);
  };
  draw();
  model.on("change:batches", draw);
  model.on("change:status", draw);
  model.on("change:session_id", draw);
}

export default { render };

// Tool catalog: manifests with membership toggles, grouped by where they come from (Python
// functions, each MCP server). A toggle sends {type: "toggle", name, member}.

function groupedTools(tools) {
  const order = new Map();
  for (const t of tools) if (!order.has(t.group || "")) order.set(t.group || "", order.size);
  return [...tools].sort((a, b) => order.get(a.group || "") - order.get(b.group || ""));
}

function schemaSummary(schema) {
  const props = (schema && schema.properties) || {};
  const req = new Set((schema && schema.required) || []);
  return Object.keys(props).map((k) => {
    const t = props[k] && props[k].type ? `: ${props[k].type}` : "";
    return `${k}${req.has(k) ? "" : "?"}${t}`;
  }).join(", ");
}

function render({ model, el }) {
  const root = pEl("div", "lash-panel lash-tools");
  const head = pEl("div", "lash-panel-head");
  const count = pEl("span", "lash-muted");
  const refresh = pEl("button", null, "↻");
  refresh.title = "Reload the catalog";
  const msg = pEl("div", "lash-error");
  const say = (text) => { msg.textContent = text; msg.style.display = ""; };
  refresh.addEventListener("click", () => pSend(model, { type: "refresh" }, say));
  let gone = false; // the kernel that owns the panel is gone: nothing can toggle
  head.append(pEl("span", null, "Tool catalog"), count, refresh);
  const table = pEl("table", "lash-table");
  root.append(head, msg, table);
  el.append(root);
  const unhide = pHideSnapshot(model);

  const draw = () => {
    const tools = model.get("tools") || [];
    const members = tools.filter((t) => t.member).length;
    count.textContent = `${members} of ${tools.length} active`;
    msg.textContent = gone ? PANEL_GONE : model.get("message") || "";
    msg.style.display = msg.textContent ? "" : "none";
    refresh.disabled = gone;
    const rows = [];
    const hr = pEl("tr");
    for (const h of ["active", "tool", "arguments", "description"]) hr.append(pEl("th", null, h));
    rows.push(hr);
    let group = null;
    for (const t of groupedTools(tools)) {
      if (t.group && t.group !== group) {
        group = t.group;
        const inGroup = tools.filter((x) => x.group === group);
        const gr = pEl("tr", "lash-group");
        gr.dataset.group = group;
        const th = pEl("td");
        th.colSpan = 4;
        th.append(pEl("strong", null, group), " ",
          pEl("span", "lash-muted", `${inGroup.filter((x) => x.member).length} of ${inGroup.length} active`));
        gr.append(th);
        rows.push(gr);
      }
      const tr = pEl("tr");
      tr.dataset.tool = t.name;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !!t.member;
      box.disabled = gone;
      box.addEventListener("change", () => {
        box.disabled = true;
        pSend(model, { type: "toggle", name: t.name, member: box.checked }, (text) => {
          say(text);
          box.checked = !!t.member; // nothing changed: show the membership as it is
          box.disabled = false;
        });
      });
      const c0 = pEl("td"); c0.append(box);
      const c1 = pEl("td"); c1.append(pEl("code", null, t.name));
      if (t.approval && t.approval !== "always") c1.append(" ", pEl("span", "lash-tool-approval", t.approval));
      const c2 = pEl("td", null, schemaSummary(t.input_schema));
      c2.title = JSON.stringify(t.input_schema, null, 2);
      const c3 = pEl("td", null, t.description);
      if (t.implemented === false) {
        c3.append(" ", pEl("span", "lash-missing", "no implementation in this kernel"));
        tr.classList.add("lash-row-missing");
      }
      tr.append(c0, c1, c2, c3);
      rows.push(tr);
    }
    table.replaceChildren(...rows);
  };
  draw();
  model.on("change:tools", draw);
  model.on("change:message", draw);
  const unwatch = lashWatchKernel(model, () => { gone = true; draw(); });
  return () => { unhide(); unwatch(); };
}

export default { render };

// Tool catalog: manifests with membership toggles. A toggle sends {type: "toggle", name, member}.

function tEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
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
  const root = tEl("div", "lash-panel lash-tools");
  const head = tEl("div", "lash-panel-head");
  const count = tEl("span", "lash-muted");
  const refresh = tEl("button", null, "↻");
  refresh.title = "Reload the catalog";
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  head.append(tEl("span", null, "Tool catalog"), count, refresh);
  const msg = tEl("div", "lash-error");
  const table = tEl("table", "lash-table");
  root.append(head, msg, table);
  el.append(root);

  const draw = () => {
    const tools = model.get("tools") || [];
    const members = tools.filter((t) => t.member).length;
    count.textContent = `${members} of ${tools.length} active`;
    msg.textContent = model.get("message") || "";
    const rows = [];
    const hr = tEl("tr");
    for (const h of ["active", "tool", "arguments", "description"]) hr.append(tEl("th", null, h));
    rows.push(hr);
    for (const t of tools) {
      const tr = tEl("tr");
      tr.dataset.tool = t.name;
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !!t.member;
      box.addEventListener("change", () => {
        box.disabled = true;
        model.send({ type: "toggle", name: t.name, member: box.checked });
      });
      const c0 = tEl("td"); c0.append(box);
      const c1 = tEl("td"); c1.append(tEl("code", null, t.name));
      const c2 = tEl("td", null, schemaSummary(t.input_schema));
      c2.title = JSON.stringify(t.input_schema, null, 2);
      tr.append(c0, c1, c2, tEl("td", null, t.description));
      rows.push(tr);
    }
    table.replaceChildren(...rows);
  };
  draw();
  model.on("change:tools", draw);
  model.on("change:message", draw);
}

export default { render };

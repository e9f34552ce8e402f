// Shared by the panels (tool catalog, queue): element helper, hiding the panel's kernel-free
// snapshot output while this live view exists, and "kernel not connected" when a button's
// message gets no answer (a widget restored from saved state after the kernel is gone).
// When the kernel that owns the panel goes (kernel.js) the panel says so and its controls are
// disabled: PANEL_GONE.

const PANEL_GONE = "kernel gone: run the cell again to use this panel";

function pEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function pHideSnapshot(model) {
  // a style rule, not an inline style: update_display re-creates the snapshot's DOM
  const id = model.get("panel_id");
  if (!id) return () => {};
  const sel = `.lash-snapshot[data-panel="${CSS.escape(id)}"]`;
  const style = document.createElement("style");
  style.textContent = `.jp-OutputArea-child:has(${sel}) { display: none; } ${sel} { display: none; }`;
  document.head.append(style);
  return () => style.remove();
}

// send a message; when no trait changes within 5 s, show that the kernel did not answer
function pSend(model, msg, showMessage) {
  let answered = false;
  const onChange = () => { answered = true; };
  model.on("change", onChange);
  try {
    model.send(msg);
  } catch (e) { // a model restored from saved state has no comm to send on
    model.off("change", onChange);
    showMessage("kernel not connected: run the cell again to use this panel");
    return;
  }
  setTimeout(() => {
    model.off("change", onChange);
    if (!answered) showMessage("kernel not connected: run the cell again to use this panel");
  }, 5000);
}

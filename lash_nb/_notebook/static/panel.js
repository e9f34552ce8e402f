// Shared by the panels (tool catalog, queue): element helper, hiding the panel's kernel-free
// snapshot output while this live view exists, and "kernel not connected" when a button's
// message gets no answer (a widget restored from saved state after the kernel is gone).

function pEl(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function pHideSnapshot(model) {
  const id = model.get("panel_id");
  const hidden = [];
  if (!id) return () => {};
  for (const s of document.querySelectorAll(`.lash-snapshot[data-panel="${CSS.escape(id)}"]`)) {
    const box = s.closest(".jp-OutputArea-child") || s;
    box.style.display = "none";
    hidden.push(box);
  }
  return () => { for (const b of hidden) b.style.display = ""; };
}

// send a message; when no trait changes within 5 s, show that the kernel did not answer
function pSend(model, msg, showMessage) {
  let answered = false;
  const onChange = () => { answered = true; };
  model.on("change", onChange);
  model.send(msg);
  setTimeout(() => {
    model.off("change", onChange);
    if (!answered) showMessage("kernel not connected: run the cell again to use this panel");
  }, 5000);
}

// Is the kernel that owns a live view gone? (shared by the turn view and the panels)
// - A restart: ipywidgets' manager marks every model of the kernel not comm-live, the only time
//   an existing model's comm_live changes; the model says so with "comm_live_update".
// - A shutdown, a kernel that died, another kernel chosen, a restart asked by another client
//   (the REST API, another tab): no model event. The manager of JupyterLab 4 and Notebook 7
//   holds the kernel connection (widget_manager.kernel); it is disposed, or its status says
//   dead / restarting / autorestarting, or "starting": only a new kernel process publishes
//   that, and this view was drawn by the one before. Another host without it has the first
//   signal only.
// A websocket that drops and reconnects is none of these: the kernel and its turn live on.
// onGone runs at most once; the returned function stops watching.

const LASH_KERNEL_GONE = new Set(["dead", "restarting", "autorestarting", "starting"]);

function lashWatchKernel(model, onGone) {
  let over = false;
  const gone = () => {
    if (over) return;
    over = true;
    onGone();
  };
  model.on("comm_live_update", gone);
  let kernel = null;
  try {
    kernel = (model.widget_manager && model.widget_manager.kernel) || null;
  } catch (e) { kernel = null; }
  const onStatus = (_, status) => { if (LASH_KERNEL_GONE.has(status)) gone(); };
  const watched = !!(kernel && kernel.statusChanged && kernel.disposed);
  if (watched) {
    kernel.statusChanged.connect(onStatus);
    kernel.disposed.connect(gone);
    if (kernel.isDisposed || kernel.status === "dead") setTimeout(gone, 0); // gone already
  }
  return () => {
    over = true;
    model.off("comm_live_update", gone);
    if (watched) {
      kernel.statusChanged.disconnect(onStatus);
      kernel.disposed.disconnect(gone);
    }
  };
}

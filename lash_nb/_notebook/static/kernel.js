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
// onGone runs at most once, with what the page knows of the end (ADR 217): a restart this page
// asked for (Kernel > Restart) is "restarting"; a restart the server made (the kernel died, or
// another client restarted it) is "restarting" then, a microtask later, "autorestarting"
// (JupyterLab 4 and Notebook 7's kernel connection); a new kernel's "starting" says the same;
// "dead", or the connection disposed, a shutdown (or a kernel gone for good, another kernel
// chosen). The returned function stops watching.

const LASH_KERNEL_GONE = new Set(["dead", "restarting", "autorestarting", "starting"]);
const LASH_GONE_WHY = {
  restarting: "restarted from this page",
  autorestarting: "it died, or was restarted elsewhere",
  starting: "it died, or was restarted elsewhere",
  dead: "shut down, or dead",
  disposed: "shut down, or another kernel chosen",
};

function lashWatchKernel(model, onGone) {
  let over = false;
  let kernel = null;
  try {
    kernel = (model.widget_manager && model.widget_manager.kernel) || null;
  } catch (e) { kernel = null; }
  const gone = (how) => {
    if (over) return;
    over = true;
    let status = typeof how === "string" ? how : "";
    if (!status && kernel) status = kernel.isDisposed ? "disposed" : String(kernel.status || "");
    if (status !== "restarting") { onGone(LASH_GONE_WHY[status] || ""); return; }
    // a restart the server made (a death, another client's) is "restarting" too, followed by
    // "autorestarting" in the microtask after (then "unknown" while it reconnects): a task
    // later, whether that came tells which restart it was
    setTimeout(() => onGone(LASH_GONE_WHY[seen.has("autorestarting") ? "autorestarting" : status]), 0);
  };
  const seen = new Set(); // the statuses since the kernel went
  const onLive = () => gone(); // a restart's models (the status tells which restart)
  const onDisposed = () => gone("disposed");
  model.on("comm_live_update", onLive);
  const onStatus = (_, status) => {
    if (over) seen.add(status);
    else if (LASH_KERNEL_GONE.has(status)) gone(status);
  };
  const watched = !!(kernel && kernel.statusChanged && kernel.disposed);
  if (watched) {
    kernel.statusChanged.connect(onStatus);
    kernel.disposed.connect(onDisposed);
    if (kernel.isDisposed || kernel.status === "dead") setTimeout(gone, 0); // gone already
  }
  return () => {
    over = true;
    model.off("comm_live_update", onLive);
    if (watched) {
      kernel.statusChanged.disconnect(onStatus);
      kernel.disposed.disconnect(onDisposed);
    }
  };
}

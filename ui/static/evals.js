// Evals: a run's progress followed live (or by polling), the page re-read when it finishes.

const run = document.getElementById("run");
const runs = document.getElementById("runs");

function reload() {
  // Not while the page is going elsewhere (to a run just started).
  if (document.documentElement.dataset.leaving !== "true") location.reload();
}

document.addEventListener("palaver:event", (e) => {
  const event = e.detail;
  if (event.type !== "eval.run.progress" && event.type !== "eval.run.finished") return;
  const id = event.data && (event.data.run_id || event.data.id);
  if (runs) {
    // A run being started from this page: the page goes to it.
    if (document.querySelector("#start[aria-busy]")) return;
    const row = id && runs.querySelector(`[data-run="${CSS.escape(id)}"]`);
    if (row && event.type === "eval.run.progress") {
      row.cells[3].textContent = `${event.data.cases_done} / ${event.data.cases_total}`;
    } else reload();
    return;
  }
  if (!run || (id && id !== run.dataset.run)) return;
  if (event.type === "eval.run.finished") return reload();
  const d = event.data || {};
  if (d.cases_done != null) {
    run.querySelector('[data-role="progress"]').textContent = `${d.cases_done} / ${d.cases_total}`;
    const bar = run.querySelector('[data-role="bar"]');
    if (bar) {
      bar.max = d.cases_total || 1;
      bar.value = d.cases_done;
    }
  }
});

document.addEventListener("palaver:poll", () => {
  if (run && run.dataset.status === "running") reload();
});

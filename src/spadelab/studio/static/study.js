// The rating page: one pair at a time; the server decides the left/right order per rater.
"use strict";
const $ = (id) => document.getElementById(id);
let rater = null;
let current = null;  // {pair, voted, total, done}
let busy = false;

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail));
  return data;
}

function show(state) {
  current = state;
  $("start").hidden = true;
  $("rate").hidden = state.done;
  $("done").hidden = !state.done;
  if (state.done) return;
  $("progress").textContent = `pair ${state.voted + 1} of ${state.total}`;
  const base = `/api/image/${encodeURIComponent(rater)}/${state.pair}`;
  $("left-img").src = `${base}/left`;
  $("right-img").src = `${base}/right`;
  $("label").src = `${base}/label`;
  document.body.dataset.pair = String(state.pair);
}

async function begin(id) {
  rater = id;
  // Automated browsers (Playwright, Selenium) set navigator.webdriver: their votes are scripted.
  const params = new URLSearchParams(location.search);
  const scripted = navigator.webdriver === true || params.get("scripted") === "1";
  try {
    const state = await api("/api/rater", {rater: id, scripted});
    localStorage.setItem("spadelab-rater", id);
    $("rater-name").textContent = id;
    show(state);
  } catch (error) {
    $("start-error").textContent = error.message;
  }
}

async function vote(choice) {
  if (busy || !current || current.done) return;
  busy = true;
  try {
    show(await api("/api/vote", {rater, pair: current.pair, choice}));
    $("vote-error").textContent = "";
  } catch (error) {
    $("vote-error").textContent = error.message;
    show(await api(`/api/next?rater=${encodeURIComponent(rater)}`));
  } finally {
    busy = false;
  }
}

$("begin").addEventListener("click", () => begin($("rater").value.trim()));
$("rater").addEventListener("keydown", (e) => { if (e.key === "Enter") $("begin").click(); });
$("left").addEventListener("click", () => vote("left"));
$("right").addEventListener("click", () => vote("right"));
$("show-label").addEventListener("change", (e) => { $("label-fig").hidden = !e.target.checked; });
document.addEventListener("keydown", (e) => {
  if ($("rate").hidden) return;
  if (e.key === "ArrowLeft") vote("left");
  if (e.key === "ArrowRight") vote("right");
});

(async () => {
  const info = await api("/api/info");
  $("show-label").checked = info.show_label;
  $("label-fig").hidden = !info.show_label;
  const params = new URLSearchParams(location.search);
  const saved = params.get("rater") || localStorage.getItem("spadelab-rater");
  if (saved) { $("rater").value = saved; await begin(saved); }
  document.body.dataset.ready = "1";
})();

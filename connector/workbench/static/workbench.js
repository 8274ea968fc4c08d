// eshybrid workbench: rating, keyboard shortcuts, live nDCG. The page works without this script (it is
// rendered on the server); the script only adds what needs a click. Text goes in with textContent only.
"use strict";
(function () {
  const body = document.body;
  const query = body.dataset.query || "";
  const root = body.dataset.root || "";
  const raterInput = document.getElementById("rater");
  const status = document.getElementById("status");
  const state = new URLSearchParams(body.dataset.state || "");
  raterInput.value = localStorage.getItem("eshybrid-rater") || "";
  raterInput.addEventListener("change", () => localStorage.setItem("eshybrid-rater", raterInput.value.trim()));

  const hits = () => Array.from(document.querySelectorAll("li.hit"));
  const ids = (side) => {
    const section = document.querySelector(`section.side[data-side="${side}"]`);
    return section && section.dataset.ids ? section.dataset.ids.split(" ").filter(Boolean) : [];
  };
  const say = (text) => { status.textContent = text; };

  async function post(path, payload) {
    const answer = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(payload),
    });
    const data = await answer.json();
    if (!answer.ok) throw new Error((data.error && data.error.message) || answer.statusText);
    return data;
  }

  function showGrades(data) {
    for (const span of document.querySelectorAll(".grades")) {
      const grade = data.grades[span.dataset.doc];
      for (const button of span.querySelectorAll("button.grade")) {
        button.classList.toggle("on", grade !== undefined && Number(button.dataset.grade) === grade);
      }
    }
    for (const [side, value] of Object.entries(data.ndcg || {})) {
      const cell = document.querySelector(`.ndcg[data-side="${side}"]`);
      if (cell) cell.textContent = value === null ? "\u2013" : value.toFixed(4);
    }
    const list = document.querySelector("#disagreements ul");
    list.replaceChildren();
    const docs = Object.keys(data.disagreements || {}).sort();
    for (const doc of docs) {
      const li = document.createElement("li");
      const raters = Object.entries(data.disagreements[doc]).sort();
      li.textContent = `${doc}: ` + raters.map(([r, g]) => `${r}=${g}`).join(", ");
      list.appendChild(li);
    }
    if (!docs.length) { const li = document.createElement("li"); li.textContent = "none"; list.appendChild(li); }
  }

  async function rate(hit, grade) {
    const rater = raterInput.value.trim();
    if (!rater) { say("enter your rater id first"); raterInput.focus(); return; }
    localStorage.setItem("eshybrid-rater", rater);
    const side = hit.closest("section.side").dataset.side;
    try {
      const data = await post(root + "/ui/api/rate", {
        q: query, doc: hit.dataset.doc, grade: grade, rater: rater, side: side,
        spec: state.get(side) || "", a: ids("a"), b: ids("b"),
      });
      showGrades(data);
      say(`rated ${hit.dataset.doc} ${grade}`);
    } catch (e) { say(`rating failed: ${e.message}`); }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.grade");
    if (button) rate(button.closest("li.hit"), Number(button.dataset.grade));
  });

  document.getElementById("export").addEventListener("click", async () => {
    try {
      const data = await post(root + "/ui/api/export", {});
      say(`exported ${data.queries} queries, ${data.judgments} judgments to ${data.path}`);
    } catch (e) { say(`export failed: ${e.message}`); }
  });

  function move(step) {
    const list = hits();
    if (!list.length) return;
    const at = list.indexOf(document.activeElement);
    const next = at < 0 ? 0 : Math.min(Math.max(at + step, 0), list.length - 1);
    list[next].focus();
  }

  document.addEventListener("keydown", (event) => {
    const tag = event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || event.ctrlKey || event.metaKey || event.altKey) return;
    const hit = event.target.closest ? event.target.closest("li.hit") : null;
    if (event.key === "j" || event.key === "ArrowDown") { move(1); event.preventDefault(); }
    else if (event.key === "k" || event.key === "ArrowUp") { move(-1); event.preventDefault(); }
    else if (event.key === "/") { document.getElementById("q").focus(); event.preventDefault(); }
    else if (hit && ["0", "1", "2", "3"].includes(event.key)) { rate(hit, Number(event.key)); event.preventDefault(); }
  });
})();

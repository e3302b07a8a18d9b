"""The search page served at ``GET /``: one file, no external assets."""

PAGE = """<!doctype html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>foodvec search</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto;
         padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  form { display: grid; grid-template-columns: 1fr 5rem; gap: .5rem; }
  input { font-size: 1rem; padding: .45rem; }
  #q { grid-column: 1 / 2; }
  #filters { grid-column: 1 / 3; }
  button { grid-column: 1 / 3; font-size: 1rem; padding: .5rem; }
  ol { padding-left: 1.4rem; }
  li { margin: .6rem 0; }
  .score { font-family: monospace; color: #555; margin-right: .5rem; }
  .id { font-family: monospace; color: #777; margin-left: .5rem; }
  .meta { font-size: .85rem; color: #666; }
  #status { color: #a00; min-height: 1.2rem; }
</style>
</head>
<body>
<h1>foodvec: food search</h1>
<form id="form">
  <input id="q" name="q" placeholder="김치, 뼈에 좋은 음식, 비타민 C" autofocus required>
  <select id="mode" title="search mode">
    <option value="hybrid" selected>hybrid</option>
    <option value="dense">dense</option>
    <option value="lexical">lexical</option>
  </select>
  <input id="k" name="k" type="number" min="1" max="1000" value="10" title="results">
  <input id="filters" name="filters" placeholder="filters: category=과일, healthy=1">
  <input id="token" type="password" placeholder="token (if reads are protected)">
  <button type="submit">Search</button>
</form>
<p id="status"></p>
<ol id="results"></ol>
<script>
const form = document.getElementById("form");
function parseFilters(text) {
  const out = {};
  for (const part of text.split(",")) {
    const t = part.trim();
    if (!t) continue;
    const i = t.indexOf("=");
    if (i < 1) throw new Error("filters are key=value, separated by commas: " + t);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = document.getElementById("status");
  const list = document.getElementById("results");
  status.textContent = "";
  list.innerHTML = "";
  let body;
  try {
    body = {query: document.getElementById("q").value,
            k: parseInt(document.getElementById("k").value || "10", 10),
            mode: document.getElementById("mode").value,
            filters: parseFilters(document.getElementById("filters").value)};
  } catch (e) { status.textContent = e.message; return; }
  const headers = {"Content-Type": "application/json"};
  const token = document.getElementById("token").value.trim();
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch("/search", {method: "POST", headers, body: JSON.stringify(body)});
  const data = await res.json();
  if (!res.ok) { status.textContent = data.detail || ("error " + res.status); return; }
  if (!data.results.length) { status.textContent = "no results"; return; }
  for (const hit of data.results) {
    const li = document.createElement("li");
    li.className = "hit";
    const score = document.createElement("span");
    score.className = "score"; score.textContent = hit.score.toFixed(4);
    const text = document.createElement("span");
    text.className = "text"; text.textContent = hit.text;
    const id = document.createElement("span");
    id.className = "id"; id.textContent = hit.id;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = Object.entries(hit.metadata).map(([k, v]) => k + "=" + v).join("  ");
    li.append(score, text, id, meta);
    list.append(li);
  }
});
</script>
</body>
</html>
"""

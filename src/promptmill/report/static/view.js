// promptmill view: the results browser's page. Every text from the job is put in the page
// with textContent (never innerHTML), so a response holding HTML shows as text.
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var state = { q: "", status: "", kind: "", category: "", correct: "", row: null };
  var pages = [-1];          // the "after" key of each page seen, for "previous"
  var listRequest = null;    // the list fetch in flight (aborted by a newer one)
  var countRequest = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "className") { node.className = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { if (child) { node.appendChild(child); } });
    return node;
  }
  function number(n) { return Number(n).toLocaleString("en-US"); }
  function filterQuery(extra) {
    var params = new URLSearchParams();
    ["q", "status", "kind", "category", "correct"].forEach(function (key) {
      if (state[key]) { params.set(key, state[key]); }
    });
    Object.keys(extra || {}).forEach(function (key) { params.set(key, extra[key]); });
    return params.toString();
  }
  function fetchJson(url, controller) {
    return fetch(url, controller ? { signal: controller.signal } : {}).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  // -- the URL keeps the filters and the open row, so a view can be linked and reloaded --
  function saveHash() {
    var query = filterQuery(state.row !== null ? { row: state.row + 1 } : {});
    history.replaceState(null, "", query ? "#" + query : location.pathname);
  }
  function loadHash() {
    var params = new URLSearchParams(location.hash.slice(1));
    ["q", "status", "kind", "category", "correct"].forEach(function (key) {
      state[key] = params.get(key) || "";
    });
    var row = parseInt(params.get("row"), 10);
    state.row = isNaN(row) ? null : row - 1;
    $("search").value = state.q;
    ["status", "kind", "category", "correct"].forEach(function (key) { ensureOption(key, state[key]); });
  }
  function ensureOption(id, value) {
    var select = $(id);
    if (value && !Array.prototype.some.call(select.options, function (o) { return o.value === value; })) {
      select.appendChild(el("option", { value: value, text: value }));
    }
    select.value = value;
  }

  // -- the list ---------------------------------------------------------------------------
  function loadPage() {
    var after = pages[pages.length - 1];
    var key = filterQuery({ after: after });
    if (listRequest) { listRequest.abort(); }
    var controller = listRequest = new AbortController();
    document.body.setAttribute("data-list", "loading");
    return fetchJson("/api/rows?" + key, controller).then(function (page) {
      if (page.interrupted || controller !== listRequest) { return; }
      listRequest = null;
      drawRows(page.rows, page.more, page.graded);
      document.body.setAttribute("data-list", "ready");
      document.body.setAttribute("data-list-key", key);
    }).catch(function (error) {
      if (error.name !== "AbortError") { document.body.setAttribute("data-list", "error"); }
    });
  }
  function loadCount() {
    if (countRequest) { countRequest.abort(); }
    var controller = countRequest = new AbortController();
    $("match-count").textContent = "counting…";
    fetchJson("/api/count?" + filterQuery(), controller).then(function (result) {
      if (result.interrupted || controller !== countRequest) { return; }
      countRequest = null;
      $("match-count").textContent = number(result.count) + (result.count === 1 ? " row" : " rows");
      $("match-count").setAttribute("data-count", result.count);
    }).catch(function () {});
  }
  function drawRows(rows, more, graded) {
    var body = $("rows").tBodies[0];
    body.textContent = "";
    rows.forEach(function (row) {
      var correct = row.correct === null ? "" : row.correct + "/" + row.responses;
      var tr = el("tr", { "data-row": row.row, "data-status": row.status }, [
        el("td", { className: "num", text: String(row.row + 1) }),
        el("td", {}, [el("span", { className: "badge " + row.status, text: row.status }),
                      row.kind ? el("span", { className: "badge", text: row.kind }) : null]),
        el("td", { text: row.category || "" }),
        el("td", { className: "text prompt", text: row.prompt, title: row.prompt }),
        el("td", { className: "text response", text: row.response, title: row.response }),
        el("td", { className: "num", text: String(row.attempts) }),
        graded ? el("td", { className: "num", text: correct }) : null,
      ]);
      if (row.row === state.row) { tr.className = "selected"; }
      tr.addEventListener("click", function () { openRow(row.row); });
      body.appendChild(tr);
    });
    $("empty").hidden = rows.length > 0;
    $("correct-head").hidden = !graded;
    var first = rows.length ? rows[0].row + 1 : 0;
    var last = rows.length ? rows[rows.length - 1].row + 1 : 0;
    $("page-info").textContent = rows.length ? "page " + pages.length + ": rows " + number(first) + "–" + number(last) : "";
    $("prev").disabled = $("first").disabled = pages.length < 2;
    $("next").disabled = !more;
    $("next").onclick = function () { pages.push(rows[rows.length - 1].row); loadPage(); };
  }
  function restart() {
    pages = [-1];
    saveHash();
    if (countRequest) { countRequest.abort(); }
    $("match-count").textContent = "counting…";
    $("match-count").removeAttribute("data-count");
    // The count (a whole scan for a search) starts once the rows are shown: the rows first.
    loadPage().then(loadCount);
  }

  // -- one row ----------------------------------------------------------------------------
  function openRow(index) {
    state.row = index;
    saveHash();
    Array.prototype.forEach.call($("rows").tBodies[0].rows, function (tr) {
      tr.className = Number(tr.getAttribute("data-row")) === index ? "selected" : "";
    });
    var pane = $("detail");
    pane.hidden = false;
    pane.setAttribute("data-row", "loading");
    fetchJson("/api/row/" + index).then(function (row) {
      if (state.row !== index) { return; }
      drawDetail(row);
      pane.setAttribute("data-row", String(index));
    }).catch(function (error) {
      pane.textContent = "";
      pane.appendChild(el("p", { className: "error", text: "row " + (index + 1) + ": " + error.message }));
      pane.setAttribute("data-row", "error");
    });
  }
  function textBlock(text, className) {
    return el("pre", { className: "text-block" + (className ? " " + className : ""), text: text });
  }
  function drawDetail(row) {
    var pane = $("detail");
    pane.textContent = "";
    pane.appendChild(el("h2", { text: "Row " + (row.row + 1) + " · " + row.status }));
    var fields = el("table", { className: "fields" });
    Object.keys(row.fields).forEach(function (name) {
      fields.appendChild(el("tr", {}, [el("td", { text: name }), el("td", {}, [textBlock(row.fields[name])])]));
    });
    pane.appendChild(el("h3", { text: "Fields" }));
    pane.appendChild(fields);
    pane.appendChild(el("h3", { text: "Prompt as sent" }));
    var prompt = el("div", { id: "prompt" });
    if (row.prompt.text !== null) { prompt.appendChild(textBlock(row.prompt.text)); }
    row.prompt.messages.forEach(function (message) {
      prompt.appendChild(el("div", { className: "message-role", text: message.role }));
      prompt.appendChild(textBlock(message.content));
    });
    pane.appendChild(prompt);
    pane.appendChild(el("h3", { text: row.responses.length + (row.responses.length === 1 ? " response" : " responses") }));
    var grid = el("div", { id: "responses" });
    row.responses.forEach(function (response, i) {
      var extraction = row.extractions ? row.extractions[i] : null;
      var meta = el("div", { className: "meta" }, [
        el("strong", { text: "#" + (i + 1) }),
        response.finish_reason ? el("span", { className: "badge", text: response.finish_reason }) : null,
      ]);
      if (extraction) {
        meta.appendChild(el("span", { className: "answer", text: "answer: " + (extraction.answer === null ? "none found" : extraction.answer) }));
        meta.appendChild(el("span", { className: "badge " + (extraction.correct ? "right" : "wrong"), text: extraction.correct ? "correct" : "wrong" }));
      }
      var card = el("div", { className: "response", "data-index": i }, [meta, textBlock(response.text, "response-text")]);
      if (response.logprobs && response.logprobs.length) { card.appendChild(logprobTable(response.logprobs)); }
      grid.appendChild(card);
    });
    pane.appendChild(grid);
    var errors = row.requests.filter(function (r) { return r.error; });
    if (errors.length) {
      pane.appendChild(el("h3", { text: "Error" }));
      errors.forEach(function (r) { pane.appendChild(textBlock(r.kind + ": " + r.error, "error")); });
    }
    pane.appendChild(el("h3", { text: "Attempts" }));
    var attempts = el("table", { id: "attempts", "data-state": "loading" }, [el("tr", {}, [el("th", { text: "sent" }), el("th", { className: "num", text: "took" }), el("th", { text: "outcome" })])]);
    pane.appendChild(attempts);
    // A scan of every attempt the job made: asked for once the row is shown.
    fetchJson("/api/row/" + row.row + "/attempts").then(function (found) {
      if (found.interrupted || state.row !== row.row) { return; }
      found.attempts.forEach(function (a) {
        attempts.appendChild(el("tr", {}, [
          el("td", { text: new Date(a.sent_ms).toLocaleString() }),
          el("td", { className: "num", text: (a.duration_ms / 1000).toFixed(2) + " s" }),
          el("td", { text: a.outcome.replace("_", " ") }),
        ]));
      });
      if (!found.attempts.length) { attempts.appendChild(el("tr", {}, [el("td", { text: "none recorded" })])); }
      attempts.setAttribute("data-state", "ready");
    }).catch(function () {});
    var usage = row.requests.map(function (r) { return (r.prompt_tokens || 0) + " + " + (r.completion_tokens || 0); }).join(", ");
    pane.appendChild(el("p", { className: "sub", text: "tokens (prompt + completion): " + usage }));
  }
  function logprobTable(logprobs) {
    var table = el("table", {}, [el("tr", {}, [el("th", { text: "token" }), el("th", { className: "num", text: "logprob" }), el("th", { text: "top alternatives" })])]);
    logprobs.forEach(function (entry) {
      var top = entry.top.map(function (t) { return JSON.stringify(t[0]) + " " + Number(t[1]).toFixed(2); }).join("  ");
      table.appendChild(el("tr", {}, [
        el("td", { text: JSON.stringify(entry.token) }),
        el("td", { className: "num", text: entry.logprob === null ? "" : Number(entry.logprob).toFixed(3) }),
        el("td", { text: top }),
      ]));
    });
    var details = el("details", { className: "logprobs" }, [el("summary", { text: "logprobs (" + logprobs.length + " tokens)" }), table]);
    return details;
  }

  // -- the header and the filters -----------------------------------------------------------
  function loadJob() {
    return fetchJson("/api/job").then(function (info) {
      $("job-output").textContent = info.output;
      $("job-model").textContent = info.model;
      var r = info.requests;
      $("job-counts").textContent = "· " + number(info.rows) + " rows · " + number(r.done) + " done, " + number(r.failed) + " failed, " + number(r.pending) + " pending requests";
      info.kinds.forEach(function (kind) {
        if (kind[0] !== state.kind) { $("kind").appendChild(el("option", { value: kind[0], text: kind[0] + " (" + number(kind[1]) + ")" })); }
      });
      $("correct").hidden = !info.graded;
    });
  }
  function loadFacets() {
    fetchJson("/api/facets").then(function (facets) {
      facets.categories.forEach(function (name) {
        if (name !== state.category) { $("category").appendChild(el("option", { value: name, text: name })); }
      });
      document.body.setAttribute("data-facets", "ready");
    }).catch(function () {});
  }

  var typing = null;
  $("search").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(function () { state.q = $("search").value.trim(); restart(); }, 250);
  });
  $("toolbar").addEventListener("submit", function (event) {
    event.preventDefault();
    clearTimeout(typing);
    state.q = $("search").value.trim();
    restart();
  });
  ["status", "kind", "category", "correct"].forEach(function (id) {
    $(id).addEventListener("change", function () { state[id] = $(id).value; restart(); });
  });
  $("prev").addEventListener("click", function () { if (pages.length > 1) { pages.pop(); loadPage(); } });
  $("first").addEventListener("click", function () { pages = [-1]; loadPage(); });

  // The rows first, the header and the filters' choices beside them: none waits on another.
  loadHash();
  loadPage().then(loadCount);
  loadJob().then(loadFacets);
  if (state.row !== null) { openRow(state.row); }
})();

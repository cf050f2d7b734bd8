// Follows a running run: output and states arrive as Server-Sent Events. Their text is only
// ever set through textContent, so nothing from a log or a payload is read as markup. The
// timeline is the server's own drawing (escaped there), fetched again as the run moves.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || root.dataset.finished === "true") { return; }

  // The same reading of terminal colours as the server's (src/http/ansi.rs).
  function applySgr(params, classes) {
    var codes = params === "" ? [0] : params.split(";").map(function (p) { return parseInt(p, 10) || 0; });
    for (var i = 0; i < codes.length; i++) {
      var code = codes[i];
      var family = null, name = null;
      if (code === 0) { classes.length = 0; continue; }
      if (code === 1) { family = "ansi-bold"; name = "ansi-bold"; }
      else if (code === 3) { family = "ansi-italic"; name = "ansi-italic"; }
      else if (code === 4) { family = "ansi-underline"; name = "ansi-underline"; }
      else if (code === 22) { remove(classes, "ansi-bold"); continue; }
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) { family = "ansi-fg-"; name = "ansi-fg-" + code; }
      else if (code === 39) { remove(classes, "ansi-fg-"); continue; }
      else if ((code >= 40 && code <= 47) || (code >= 100 && code <= 107)) { family = "ansi-bg-"; name = "ansi-bg-" + code; }
      else if (code === 49) { remove(classes, "ansi-bg-"); continue; }
      else if (code === 38 || code === 48) { i += codes[i + 1] === 5 ? 2 : codes[i + 1] === 2 ? 4 : 1; continue; }
      else { continue; }
      remove(classes, family);
      classes.push(name);
    }
  }
  function remove(classes, prefix) {
    for (var i = classes.length - 1; i >= 0; i--) {
      if (classes[i].indexOf(prefix) === 0) { classes.splice(i, 1); }
    }
  }
  function renderLine(text) {
    var line = document.createElement("div");
    line.className = "line";
    var classes = [];
    var pattern = /\u001b(?:\[([0-9;?]*)([A-Za-z~])|.?)/g;
    var last = 0, match;
    function emit(piece) {
      if (piece === "") { return; }
      if (classes.length === 0) { line.appendChild(document.createTextNode(piece)); return; }
      var span = document.createElement("span");
      span.className = classes.join(" ");
      span.textContent = piece;
      line.appendChild(span);
    }
    while ((match = pattern.exec(text)) !== null) {
      emit(text.slice(last, match.index));
      last = pattern.lastIndex;
      if (match[2] === "m") { applySgr(match[1] || "", classes); }
    }
    emit(text.slice(last));
    return line;
  }

  function find(selector, pipeline, stage) {
    var all = root.querySelectorAll(selector);
    for (var i = 0; i < all.length; i++) {
      if (all[i].dataset.pipeline === pipeline && all[i].dataset.stage === stage) { return all[i]; }
    }
    return null;
  }
  // A page opened before the run's pipelines were known builds their tables as they come.
  function pipelineSection(name) {
    var sections = root.querySelectorAll("section[data-pipeline-section]");
    for (var i = 0; i < sections.length; i++) {
      if (sections[i].dataset.pipelineSection === name) { return sections[i]; }
    }
    var section = document.createElement("section");
    section.className = "pipeline";
    section.dataset.pipelineSection = name;
    var title = document.createElement("h2");
    title.textContent = name + " ";
    var badge = document.createElement("span");
    badge.dataset.pipelineState = name;
    title.appendChild(badge);
    var table = document.createElement("table");
    table.className = "stages";
    table.appendChild(document.createElement("tbody"));
    section.appendChild(title);
    section.appendChild(table);
    document.getElementById("live-pipelines").appendChild(section);
    return section;
  }
  function stageRow(pipeline, stage) {
    var row = find("tr[data-pipeline]", pipeline, stage);
    if (row) { return row; }
    row = document.createElement("tr");
    row.dataset.pipeline = pipeline;
    row.dataset.stage = stage;
    var name = document.createElement("td");
    name.textContent = stage;
    var state = document.createElement("td");
    var badge = document.createElement("span");
    badge.dataset.role = "state";
    state.appendChild(badge);
    row.appendChild(name);
    row.appendChild(state);
    ["duration", "message"].forEach(function (role) {
      var cell = document.createElement("td");
      cell.dataset.role = role;
      row.appendChild(cell);
    });
    pipelineSection(pipeline).querySelector("tbody").appendChild(row);
    return row;
  }
  function logFor(pipeline, stage) {
    var pre = find("pre[data-pipeline]", pipeline, stage);
    if (pre) { return pre; }
    var details = document.createElement("details");
    details.className = "log";
    details.open = true;
    var summary = document.createElement("summary");
    summary.textContent = pipeline + " / " + stage;
    pre = document.createElement("pre");
    pre.dataset.pipeline = pipeline;
    pre.dataset.stage = stage;
    details.appendChild(summary);
    details.appendChild(pre);
    pipelineSection(pipeline).appendChild(details);
    return pre;
  }
  function setState(element, state) {
    if (!element) { return; }
    element.textContent = state;
    element.className = "state state-" + state;
  }
  function seconds(start, end) {
    if (!start) { return ""; }
    var ms = Math.max(0, (end ? Date.parse(end) : Date.now()) - Date.parse(start));
    var s = Math.floor(ms / 1000);
    if (s < 1) { return (ms / 1000).toFixed(1) + "s"; }
    if (s < 60) { return s + "s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m " + (s % 60) + "s"; }
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }

  // Fetched after each change of state and every two seconds, so running stages' bars grow;
  // a change that arrives while a fetch is under way is fetched once that one is done.
  var timeline = document.getElementById("timeline");
  var fetching = false, again = false;
  function refreshTimeline() {
    if (!timeline) { return; }
    if (fetching) { again = true; return; }
    fetching = true;
    fetch("/runs/" + root.dataset.run + "/timeline.svg", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) { return; }
        var svg = new DOMParser().parseFromString(text, "image/svg+xml").documentElement;
        if (svg.nodeName === "svg") { timeline.replaceChildren(document.importNode(svg, true)); }
      })
      .catch(function () {})
      .then(function () {
        fetching = false;
        if (again) { again = false; refreshTimeline(); }
      });
  }
  var ticking = setInterval(refreshTimeline, 2000);

  var source = new EventSource("/api/runs/" + root.dataset.run + "/events?after=" + root.dataset.after);
  source.addEventListener("log", function (event) {
    var data = JSON.parse(event.data);
    var pre = logFor(data.pipeline, data.stage);
    data.lines.forEach(function (text) { pre.appendChild(renderLine(text)); });
  });
  source.addEventListener("state", function (event) {
    var data = JSON.parse(event.data);
    setState(document.getElementById("run-state"), data.state);
    data.pipelines.forEach(function (pipeline) {
      pipeline.stages.forEach(function (stage) { stageRow(pipeline.pipeline, stage.stage); });
      var badges = root.querySelectorAll("[data-pipeline-state]");
      for (var i = 0; i < badges.length; i++) {
        if (badges[i].dataset.pipelineState === pipeline.pipeline) { setState(badges[i], pipeline.state); }
      }
      pipeline.stages.forEach(function (stage) {
        var row = stageRow(pipeline.pipeline, stage.stage);
        setState(row.querySelector("[data-role=state]"), stage.state);
        row.querySelector("[data-role=duration]").textContent = seconds(stage.started_at, stage.finished_at);
        row.querySelector("[data-role=message]").textContent = stage.message || "";
      });
    });
    refreshTimeline();
  });
  source.addEventListener("end", function (event) {
    source.close();
    var data = JSON.parse(event.data);
    setState(document.getElementById("run-state"), data.state);
    root.dataset.finished = "true";
    clearInterval(ticking);
    refreshTimeline();
  });
})();

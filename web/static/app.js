// fleetup web UI: confirmations, and the run page's live updates over
// Server-Sent Events. No framework, no inline script (the CSP forbids it).
"use strict";

document.addEventListener("submit", function (ev) {
  var form = ev.target;
  var msg = form.getAttribute && form.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
}, true);

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function humanBytes(n) {
  if (n < 1024) return n + " B";
  var units = "KMGTPE", i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return n.toFixed(1) + " " + units[i] + "iB";
}

function stateClass(s) { return "st-" + String(s).replace(/ /g, "-"); }

function setState(span, state, base) {
  span.textContent = state;
  span.className = base + " " + stateClass(state);
}

function RunPage(root) {
  this.root = root;
  this.id = root.dataset.run;
  this.nodes = new Map();
  var self = this;
  root.querySelectorAll("section.node").forEach(function (sec) {
    var comps = new Map();
    sec.querySelectorAll("tr[data-comp]").forEach(function (tr) { comps.set(tr.dataset.comp, tr); });
    self.nodes.set(sec.dataset.node, { sec: sec, comps: comps });
  });
}

RunPage.prototype.node = function (name) {
  var n = this.nodes.get(name);
  if (n) return n;
  var sec = el("section", "card node");
  sec.dataset.node = name;
  var h = el("h3");
  h.appendChild(el("span", "node-name", name));
  h.appendChild(document.createTextNode(" "));
  var st = el("span", "state st-pending", "pending");
  st.dataset.field = "state";
  h.appendChild(st);
  sec.appendChild(h);
  var msg = el("p", "msg");
  msg.dataset.field = "message";
  sec.appendChild(msg);
  document.getElementById("nodes").appendChild(sec);
  n = { sec: sec, comps: new Map() };
  this.nodes.set(name, n);
  return n;
};

// compTable is the node's table of components, made on its first one.
function compTable(sec) {
  var body = sec.querySelector('[data-field="comps"]');
  if (body) return body;
  var box = el("div", "scroll");
  var table = el("table", "comps");
  var head = el("thead"), tr = el("tr");
  ["Component", "Phase", "Progress", "Action", "Installed", "Baseline"].forEach(function (t) { tr.appendChild(el("th", null, t)); });
  head.appendChild(tr);
  table.appendChild(head);
  body = el("tbody");
  body.dataset.field = "comps";
  table.appendChild(body);
  box.appendChild(table);
  var msg = sec.querySelector('[data-field="message"]');
  msg.parentNode.insertBefore(box, msg.nextSibling);
  return body;
}

RunPage.prototype.component = function (n, id) {
  var tr = n.comps.get(id);
  if (tr) return tr;
  tr = el("tr");
  tr.dataset.comp = id;
  var c = el("td");
  c.appendChild(el("code", null, id));
  tr.appendChild(c);
  var ph = el("td"); ph.dataset.field = "phase"; ph.appendChild(el("span", "phase")); tr.appendChild(ph);
  var pr = el("td"); pr.dataset.field = "progress"; pr.className = "nowrap"; tr.appendChild(pr);
  var a = el("td"); a.dataset.field = "action"; tr.appendChild(a);
  tr.appendChild(el("td"));
  tr.appendChild(el("td"));
  compTable(n.sec).appendChild(tr);
  n.comps.set(id, tr);
  return tr;
};

RunPage.prototype.apply = function (rec) {
  var e = rec.event || {};
  if (!e.node) return;
  var n = this.node(e.node);
  if (e.state) {
    setState(n.sec.querySelector('[data-field="state"]'), e.state, "state");
    // A message is about its state.
    n.sec.querySelector('[data-field="message"]').textContent = e.message || "";
  } else if (e.message) {
    n.sec.querySelector('[data-field="message"]').textContent = e.message;
  }
  if (e.component) {
    var tr = this.component(n, e.component);
    if (e.phase) {
      var span = tr.querySelector('[data-field="phase"] .phase');
      if (!span) { span = el("span"); tr.querySelector('[data-field="phase"]').prepend(span); }
      setState(span, e.phase, "phase");
    }
    if (e.total > 0) {
      var cell = tr.querySelector('[data-field="progress"]');
      var prog = cell.querySelector("progress"), txt = cell.querySelector("small");
      if (!prog) {
        cell.textContent = "";
        prog = el("progress");
        txt = el("small");
        cell.appendChild(prog);
        cell.appendChild(document.createTextNode(" "));
        cell.appendChild(txt);
      }
      prog.max = e.total;
      prog.value = e.bytes || 0;
      txt.textContent = humanBytes(e.bytes || 0) + " / " + humanBytes(e.total);
    }
    if (e.phase === "install" || e.phase === "installed") {
      // The payload is all there: the bar is full.
      var p2 = tr.querySelector('[data-field="progress"] progress');
      if (p2) {
        p2.value = p2.max;
        var t2 = tr.querySelector('[data-field="progress"] small');
        if (t2) { t2.textContent = humanBytes(p2.max) + " / " + humanBytes(p2.max); }
      }
    }
  }
};

RunPage.prototype.follow = function () {
  var self = this;
  var after = this.root.dataset.after || "0";
  var url = "/api/v1/runs/" + encodeURIComponent(this.id) + "/events?after=" + encodeURIComponent(after);
  var src = new EventSource(url);
  var live = document.getElementById("live");
  src.onmessage = function (m) {
    try { self.apply(JSON.parse(m.data)); } catch (err) { /* a malformed event changes nothing */ }
  };
  src.addEventListener("end", function (m) {
    src.close();
    var state = "ended";
    try { state = JSON.parse(m.data).state || state; } catch (err) { /* keep "ended" */ }
    setState(document.getElementById("run-state"), state, "state");
    var cancel = document.getElementById("cancel-form");
    if (cancel) cancel.hidden = true;
    if (live) live.textContent = "The run is over: loading its results…";
    // The results and the report links come with the page.
    window.setTimeout(function () { window.location.reload(); }, 800);
  });
  src.onerror = function () {
    if (live) live.textContent = "Live: reconnecting…";
  };
  src.onopen = function () {
    if (live) live.textContent = "Live: updates as the run goes.";
  };
};

document.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("run");
  if (root && root.dataset.running === "yes" && window.EventSource) {
    new RunPage(root).follow();
  }
});

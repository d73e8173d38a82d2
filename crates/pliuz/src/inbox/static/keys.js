// Pliuz inbox: keyboard shortcuts and opt-in desktop notifications.
// Served from /static/keys.js (the CSP allows only same-origin script).
// Shortcuts never fire while typing in a field or with Ctrl/Alt/Meta held.
(function () {
  'use strict';

  var queue = document.getElementById('queue');
  var request = document.querySelector('[data-request-id]');
  if (!queue && !request) return;
  var main = document.getElementById('main');

  var SHORTCUTS = queue
    ? [['j', 'Next request'], ['k', 'Previous request'], ['Enter / o', 'Open the selected request'], ['?', 'Show or hide these shortcuts']]
    : [['j', 'Next waiting request'], ['k', 'Previous waiting request'], ['a', 'Approve'], ['r', 'Reject: write the reason, then Ctrl+Enter'], ['e', 'Edit the arguments'], ['u', 'Back to the inbox'], ['?', 'Show or hide these shortcuts']];

  // The list of shortcuts, shown on the page.
  var help = document.createElement('aside');
  help.id = 'shortcuts';
  help.className = 'card shortcuts';
  help.setAttribute('aria-label', 'Keyboard shortcuts');
  var h = document.createElement('h2');
  h.textContent = 'Keyboard shortcuts';
  help.appendChild(h);
  var dl = document.createElement('dl');
  SHORTCUTS.forEach(function (s) {
    var dt = document.createElement('dt');
    var kbd = document.createElement('kbd');
    kbd.textContent = s[0];
    dt.appendChild(kbd);
    var dd = document.createElement('dd');
    dd.textContent = s[1];
    dl.appendChild(dt);
    dl.appendChild(dd);
  });
  help.appendChild(dl);
  if (main) main.appendChild(help);

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
  }

  // The inbox list: a selected row moved with j/k.
  var selected = -1;
  function rows() { return queue ? Array.prototype.slice.call(queue.querySelectorAll('li.item')) : []; }
  function select(i) {
    var list = rows();
    if (!list.length) return;
    selected = Math.max(0, Math.min(list.length - 1, i));
    list.forEach(function (li, n) { li.classList.toggle('selected', n === selected); });
    var link = list[selected].querySelector('a');
    if (link) link.focus();
  }

  // The request page: neighbours in the oldest-first inbox.
  function neighbour(step) {
    var id = request.getAttribute('data-request-id');
    fetch('/inbox?order=oldest', { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var ids = Array.prototype.map.call(doc.querySelectorAll('#queue li.item'), function (li) { return li.getAttribute('data-id'); });
        if (!ids.length) return;
        var at = ids.indexOf(id);
        var next = at < 0 ? ids[0] : ids[at + step];
        if (next) window.location.assign('/requests/' + encodeURIComponent(next));
      })
      .catch(function () {});
  }

  function click(id) {
    var el = document.getElementById(id);
    if (el && !el.disabled) { el.click(); return true; }
    return false;
  }

  document.addEventListener('keydown', function (e) {
    var t = e.target;
    // In the reason box, Ctrl/Cmd+Enter rejects.
    if (t && t.id === 'reason' && e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      click('reject');
      return;
    }
    if (e.ctrlKey || e.altKey || e.metaKey || typing(t)) return;
    var done = true;
    if (e.key === '?') {
      help.hidden = !help.hidden;
    } else if (queue) {
      if (e.key === 'j') select(selected + 1);
      else if (e.key === 'k') select(selected - 1);
      else if ((e.key === 'Enter' || e.key === 'o') && selected >= 0) {
        var link = rows()[selected] && rows()[selected].querySelector('a');
        if (link) window.location.assign(link.href); else done = false;
      } else done = false;
    } else {
      if (e.key === 'j') neighbour(1);
      else if (e.key === 'k') neighbour(-1);
      else if (e.key === 'a') done = click('approve');
      else if (e.key === 'r') {
        var reason = document.getElementById('reason');
        if (reason && !reason.disabled) reason.focus(); else done = false;
      } else if (e.key === 'e') {
        var edit = document.getElementById('edit');
        var args = document.getElementById('final_args');
        if (edit && args) { edit.open = true; args.focus(); } else done = false;
      } else if (e.key === 'u') window.location.assign('/inbox');
      else done = false;
    }
    if (done) e.preventDefault();
  });

  // Desktop notifications for new requests while the inbox is open (opt-in).
  if (!queue || !('Notification' in window)) return;
  var KEY = 'pliuz.notifications';
  var bar = document.querySelector('.page-head');
  var button = document.createElement('button');
  button.type = 'button';
  button.id = 'notify-toggle';
  button.className = 'subtle';
  function wanted() { try { return window.localStorage.getItem(KEY) === 'on'; } catch (err) { return false; } }
  function setWanted(on) { try { window.localStorage.setItem(KEY, on ? 'on' : 'off'); } catch (err) { /* private mode */ } }
  function label() {
    if (Notification.permission === 'denied') {
      button.textContent = 'Notifications blocked by the browser';
      button.disabled = true;
    } else {
      button.textContent = wanted() && Notification.permission === 'granted' ? 'Turn off desktop notifications' : 'Turn on desktop notifications';
    }
  }
  button.addEventListener('click', function () {
    if (wanted() && Notification.permission === 'granted') { setWanted(false); label(); return; }
    Promise.resolve(Notification.requestPermission()).then(function (p) {
      setWanted(p === 'granted');
      label();
    });
  });
  label();
  if (bar) bar.appendChild(button);

  document.addEventListener('pliuz:new-request', function (e) {
    if (!wanted() || Notification.permission !== 'granted') return;
    var d = e.detail || {};
    try {
      var n = new Notification('New request: ' + (d.tool || 'a tool call'), {
        body: d.policy ? 'Policy ' + d.policy + ' — waiting for a decision' : 'Waiting for a decision',
        tag: 'pliuz-' + d.id,
      });
      n.onclick = function () { window.focus(); window.location.assign('/requests/' + encodeURIComponent(d.id)); };
    } catch (err) { /* some browsers allow notifications only from a service worker */ }
  });
})();

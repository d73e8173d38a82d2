// Pliuz inbox: small progressive enhancements. Every page works without it.
// Loaded from /static/inbox.js only (the Content-Security-Policy forbids
// inline script). Nothing here puts agent-supplied text into HTML: rows come
// pre-rendered and escaped by the server; everything else uses textContent.
(function () {
  'use strict';

  function spanWords(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) {
      var m = Math.floor((s % 3600) / 60);
      return Math.floor(s / 3600) + ' h' + (m ? ' ' + m + ' min' : '');
    }
    var d = Math.floor(s / 86400);
    return d + (d === 1 ? ' day' : ' days');
  }

  // Countdowns to each request's expiry.
  function tick() {
    var now = Date.now();
    document.querySelectorAll('[data-expires]').forEach(function (el) {
      var left = Number(el.getAttribute('data-expires')) - now;
      el.textContent = left > 0 ? 'expires in ' + spanWords(left) : 'expired';
      el.classList.toggle('soon', left < 5 * 60 * 1000);
    });
  }
  tick();
  setInterval(tick, 1000);

  // Live inbox: server-sent events add and remove rows.
  var queue = document.getElementById('queue');
  var status = document.getElementById('live-status');
  var empty = document.getElementById('queue-empty');
  var count = document.getElementById('pending-count');
  var noun = document.getElementById('pending-noun');

  function setStatus(text, on) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle('on', !!on);
  }
  function setCount(n) {
    if (count && typeof n === 'number' && n >= 0) {
      count.textContent = String(n);
      if (noun) noun.textContent = n === 1 ? 'request' : 'requests';
    }
  }
  function refreshEmpty() {
    if (empty && queue) empty.hidden = queue.children.length > 0;
  }
  function rowFor(id) {
    if (!queue) return null;
    var rows = queue.children;
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].getAttribute('data-id') === id) return rows[i];
    }
    return null;
  }

  // After a reconnect (or when events were missed) re-read the list.
  function resync() {
    if (!queue) return;
    fetch(window.location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (text) {
        if (!text) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var fresh = doc.getElementById('queue');
        var freshCount = doc.getElementById('pending-count');
        if (fresh) queue.replaceChildren.apply(queue, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
        if (freshCount) setCount(Number(freshCount.textContent));
        refreshEmpty();
      })
      .catch(function () {});
  }

  var request = document.querySelector('[data-request-id]');

  function connect(url) {
    if (!window.EventSource) return;
    var source = new EventSource(url);
    var hadHello = false;
    source.addEventListener('hello', function () {
      setStatus('Live — updates appear automatically', true);
      if (request) request.setAttribute('data-live', 'on');
      if (hadHello) resync();
      hadHello = true;
    });
    source.addEventListener('error', function () {
      setStatus('Reconnecting…', false);
    });
    source.addEventListener('reload', resync);
    source.addEventListener('add', function (e) {
      var d = JSON.parse(e.data);
      var existing = rowFor(d.id);
      if (queue && existing) {
        // A vote or an edit on a listed request: show its new state.
        var u = document.createElement('template');
        u.innerHTML = d.html; // rendered and escaped by the server
        if (u.content.firstElementChild) existing.replaceWith(u.content.firstElementChild);
      } else if (queue) {
        var t = document.createElement('template');
        t.innerHTML = d.html; // rendered and escaped by the server
        var li = t.content.firstElementChild;
        if (li) {
          li.classList.add('new');
          document.dispatchEvent(new CustomEvent('pliuz:new-request', { detail: { id: d.id, tool: (li.querySelector('.tool') || {}).textContent, policy: (li.querySelector('.policy') || {}).textContent } }));
          if (queue.getAttribute('data-order') === 'oldest') {
            if (queue.getAttribute('data-more') !== 'true') queue.appendChild(li);
          } else if (queue.getAttribute('data-first') === 'true') {
            queue.insertBefore(li, queue.firstChild);
          }
        }
      }
      setCount(d.count);
      refreshEmpty();
      // Someone edited the arguments of the request on this page: what is
      // shown is no longer what a decision would apply to.
      if (request && request.getAttribute('data-request-id') === d.id &&
          request.getAttribute('data-status') === 'pending' && d.args_digest &&
          d.args_digest !== request.getAttribute('data-args-digest')) {
        request.setAttribute('data-args-changed', 'true');
        var note = document.getElementById('changed-elsewhere');
        if (note) {
          note.textContent = 'The arguments of this request were changed by an approver while you were looking at it. Nothing you decide here would apply to them: reload the page to review the new arguments. ';
          var again = document.createElement('a');
          again.href = window.location.pathname;
          again.id = 'reload-request';
          again.textContent = 'Reload';
          note.appendChild(again);
          note.hidden = false;
        }
        var decide = document.getElementById('decide');
        if (decide) decide.querySelectorAll('button, textarea').forEach(function (el) { el.disabled = true; });
      }
    });
    source.addEventListener('remove', function (e) {
      var d = JSON.parse(e.data);
      var li = rowFor(d.id);
      if (li) li.remove();
      setCount(d.count);
      refreshEmpty();
      if (request && request.getAttribute('data-request-id') === d.id &&
          request.getAttribute('data-status') === 'pending') {
        request.setAttribute('data-status', d.status);
        var note = document.getElementById('changed-elsewhere');
        if (note) {
          note.textContent = 'This request was ' + d.status + ' while you were looking at it. Reload the page to see the outcome.';
          note.hidden = false;
        }
        var decide = document.getElementById('decide');
        if (decide) decide.querySelectorAll('button, textarea').forEach(function (el) { el.disabled = true; });
      }
    });
    window.addEventListener('pagehide', function () { source.close(); });
  }

  if (queue) {
    connect(queue.getAttribute('data-live'));
  } else if (request && request.getAttribute('data-status') === 'pending') {
    connect('/inbox/events');
  }

  // JSON editor: live syntax check and a format button.
  var editor = document.getElementById('final_args');
  if (editor) {
    var jsonStatus = document.getElementById('json-status');
    var format = document.getElementById('format-json');
    var check = function () {
      try {
        var v = JSON.parse(editor.value);
        if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('the arguments must be a JSON object');
        jsonStatus.textContent = 'Valid JSON. The server also checks it against the tool\u2019s schema.';
        jsonStatus.className = 'help json-ok';
        editor.setAttribute('aria-invalid', 'false');
        return v;
      } catch (err) {
        jsonStatus.textContent = 'Not valid yet: ' + err.message;
        jsonStatus.className = 'help json-bad';
        editor.setAttribute('aria-invalid', 'true');
        return null;
      }
    };
    editor.addEventListener('input', check);
    if (format) {
      format.hidden = false;
      format.addEventListener('click', function () {
        var v = check();
        if (v) { editor.value = JSON.stringify(v, null, 2); check(); }
      });
    }
  }

  // Show times in the reader's own time zone.
  document.querySelectorAll('time[datetime]').forEach(function (el) {
    if (/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/.test(el.textContent)) {
      var d = new Date(el.getAttribute('datetime'));
      if (!isNaN(d)) el.textContent = d.toLocaleString();
    }
  });
})();

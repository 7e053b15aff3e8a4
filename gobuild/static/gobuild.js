// gobuild's own script, loaded after htmx and its SSE extension. Every page also works without it:
// the live log then comes from a page reload every few seconds.
(function () {
  'use strict';

  var finished = false; // the build ended: a closing stream is expected, not an error

  // The favicon follows the status line: building, error, or done.
  function syncFavicon() {
    var marker = document.querySelector('#status [data-favicon]');
    var icon = document.getElementById('favicon');
    if (marker && icon && icon.getAttribute('href') !== marker.dataset.favicon) {
      icon.setAttribute('href', marker.dataset.favicon);
    }
  }

  // Keep the log scrolled to its end while it grows, unless the reader scrolled up.
  function followLog() {
    var log = document.getElementById('log');
    if (!log) return;
    var stick = true;
    log.addEventListener('scroll', function () {
      stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
    });
    new MutationObserver(function () {
      if (stick) log.scrollTop = log.scrollHeight;
    }).observe(log, { childList: true, characterData: true, subtree: true });
    log.scrollTop = log.scrollHeight;
  }

  document.addEventListener('htmx:sseMessage', function (e) {
    var msg = e.detail;
    if (msg.type === 'log' && msg.lastEventId) {
      // If the extension has to open a new EventSource (which loses Last-Event-ID), resume here.
      var live = document.getElementById('live');
      if (live) live.setAttribute('sse-connect', live.dataset.eventsUrl + '?offset=' + msg.lastEventId);
    } else if (msg.type === 'update') {
      var update = JSON.parse(msg.data);
      if (update.Kind === 'Success') {
        finished = true;
        // The status swapped in just before this update links the result; else the build page redirects there.
        var done = document.querySelector('#status [data-result-url]');
        if (done) location.assign(done.dataset.resultUrl); else location.reload();
      } else if (update.Kind === 'PermFailed' || update.Kind === 'TempFailed') {
        finished = true;
      }
    }
    syncFavicon();
  });

  // The server refused the stream (too many open, or the build is gone): reload, and poll instead.
  document.addEventListener('htmx:sseError', function (e) {
    var source = e.detail && e.detail.source;
    if (!finished && source && source.readyState === EventSource.CLOSED) {
      finished = true;
      source.close();
      var live = document.getElementById('live');
      if (live) location.replace(live.dataset.pollUrl); else location.reload();
    }
  });

  document.addEventListener('htmx:afterSettle', syncFavicon);
  document.addEventListener('htmx:oobAfterSwap', syncFavicon);

  // Elapsed times (<time data-since="unix seconds">) tick on between status updates.
  function tick() {
    document.querySelectorAll('time[data-since]').forEach(function (t) {
      var s = Math.max(0, Math.floor(Date.now() / 1000 - Number(t.dataset.since)));
      var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
      var pad = function (n) { return (n < 10 ? '0' : '') + n; };
      t.textContent = h ? h + ':' + pad(m) + ':' + pad(r) : m + ':' + pad(r);
    });
  }

  // Copy: the clipboard API where the page is a secure context, else select the text and
  // execCommand('copy') (plain-HTTP hosts); either way the button says what happened.
  function copyText(target) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(target.textContent.trim()).catch(function () {
        return selectAndCopy(target); // permission refused: the old way still works
      });
    }
    return selectAndCopy(target);
  }

  function selectAndCopy(target) {
    var range = document.createRange();
    range.selectNodeContents(target);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (err) { ok = false; }
    return ok ? Promise.resolve() : Promise.reject(new Error('copy refused'));
  }

  function setupCopy() {
    document.querySelectorAll('button[data-copy]').forEach(function (button) {
      var target = document.getElementById(button.dataset.copy);
      if (!target) return;
      button.hidden = false;
      button.addEventListener('click', function () {
        copyText(target).then(function () {
          button.textContent = 'Copied';
          button.classList.add('copied');
        }, function () {
          button.textContent = 'Selected: press Ctrl+C';
        });
        setTimeout(function () { button.textContent = 'Copy'; button.classList.remove('copied'); }, 2000);
      });
    });
  }

  // Filter boxes (shown only with script) hide the entries of a link column that do not match,
  // and a group heading whose entries are all hidden.
  function setupFilters() {
    document.querySelectorAll('input[data-filter]').forEach(function (input) {
      var list = document.getElementById(input.dataset.filter);
      if (!list) return;
      input.hidden = false;
      input.addEventListener('input', function () {
        var words = input.value.toLowerCase().split(/[\s/]+/).filter(Boolean);
        var heading = null, shown = 0;
        var close = function () { if (heading) heading.hidden = shown === 0; };
        list.querySelectorAll('li').forEach(function (li) {
          if (li.classList.contains('os')) { close(); heading = li; shown = 0; return; }
          var text = (li.dataset.os || '') + ' ' + li.textContent.toLowerCase();
          li.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
          if (!li.hidden) shown++;
        });
        close();
      });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    followLog();
    setupCopy();
    setupFilters();
    tick();
    setInterval(tick, 1000);
  });
})();

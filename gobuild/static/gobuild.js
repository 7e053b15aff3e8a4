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

  // Copy buttons: shown only when script runs; they copy the text of the element they name.
  function setupCopy() {
    document.querySelectorAll('button[data-copy]').forEach(function (button) {
      var target = document.getElementById(button.dataset.copy);
      if (!target || !navigator.clipboard) return;
      button.hidden = false;
      button.addEventListener('click', function () {
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = 'Copied';
          setTimeout(function () { button.textContent = 'Copy'; }, 1500);
        });
      });
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    followLog();
    setupCopy();
  });
})();

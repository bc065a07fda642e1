/**
 * The rating page: one self-contained HTML document (inline CSS and JS, nothing from the
 * network). It asks the server for the rater's next pair, plays the two videos side by side in
 * a loop kept in step, and posts the two answers. It never learns which set a side shows: the
 * videos come from `video/PAIR/left|right` and the server keeps the order (src/rating/store.ts).
 */

import { QUESTION_TEXT } from './results.js';
import { QUESTIONS } from './store.js';

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const CSS = `
body { font: 16px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em; color: #222; }
h1 { font-size: 1.3em; } .muted { color: #666; }
.videos { display: flex; gap: 1em; justify-content: center; }
.videos figure { margin: 0; text-align: center; flex: 1; }
.videos video { width: 100%; max-width: 512px; background: #000; image-rendering: pixelated; }
fieldset { margin: 1em 0; border: 1px solid #ccc; border-radius: 6px; }
label { margin-right: 2em; cursor: pointer; }
button { font-size: 1em; padding: .5em 2em; }
#error { color: #b00; }
`;

// Plain ES2017 in a string: this project compiles without the DOM library.
const SCRIPT = `
(function () {
  var base = location.pathname.replace(/\\/+$/, '');
  var left = document.getElementById('left'), right = document.getElementById('right');
  var form = document.getElementById('form'), submit = document.getElementById('submit');
  var pair = null;
  function show(id, on) { document.getElementById(id).hidden = !on; }
  function error(msg) { document.getElementById('error').textContent = msg || ''; }
  // Both restart together when both have ended, and the right follows the left within 1/10 s.
  function playBoth() {
    left.currentTime = 0; right.currentTime = 0;
    Promise.all([left.play(), right.play()]).catch(function () {});
  }
  function ended() { if (left.ended && right.ended) playBoth(); }
  left.addEventListener('ended', ended); right.addEventListener('ended', ended);
  left.addEventListener('timeupdate', function () {
    if (!right.paused && Math.abs(right.currentTime - left.currentTime) > 0.1) right.currentTime = left.currentTime;
  });
  var ready = 0;
  function canplay() { if (++ready === 2) playBoth(); }
  left.addEventListener('canplay', canplay); right.addEventListener('canplay', canplay);
  function answers() {
    var out = {};
    ${JSON.stringify(QUESTIONS)}.forEach(function (q) {
      var c = form.querySelector('input[name="' + q + '"]:checked');
      out[q] = c ? c.value : null;
    });
    return out;
  }
  form.addEventListener('change', function () {
    var a = answers();
    submit.disabled = !Object.keys(a).every(function (k) { return a[k]; });
  });
  function load() {
    error('');
    fetch(base + '/next').then(function (r) {
      if (!r.ok) throw new Error('the server answered ' + r.status);
      return r.json();
    }).then(function (s) {
      document.getElementById('progress').textContent = s.answered + ' of ' + s.total + ' pairs rated';
      if (s.done) { show('rating', false); show('done', true); pair = null; return; }
      pair = s.pair; ready = 0;
      form.reset(); submit.disabled = true;
      left.src = base + '/video/' + pair + '/left';
      right.src = base + '/video/' + pair + '/right';
      show('rating', true);
    }).catch(function (e) { error(e.message); });
  }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    if (pair === null) return;
    var body = answers(); body.pair = pair;
    submit.disabled = true;
    fetch(base + '/vote', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.status); }); })
      .then(load)
      .catch(function (e) { error(e.message); submit.disabled = false; });
  });
  load();
})();
`;

function question(q: (typeof QUESTIONS)[number]): string {
  const opts = [
    ['left', 'Left'],
    ['same', 'About the same'],
    ['right', 'Right'],
  ];
  return `<fieldset><legend>${esc(QUESTION_TEXT[q].ask)}</legend>${opts
    .map(([v, l]) => `<label><input type="radio" name="${q}" value="${v}"> ${l}</label>`)
    .join('')}</fieldset>`;
}

/** The page for a rater (their name is shown so a shared screen says whose votes these are). */
export function ratingPage(rater: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vggrpo rating</title><style>${CSS}</style></head>
<body>
<h1>Which video is better?</h1>
<p class="muted">Rating as ${esc(rater)} · <span id="progress"></span></p>
<div id="rating" hidden>
<p class="muted">Two videos of the same prompt and seed, in random order. They loop together.</p>
<div class="videos">
<figure><video id="left" muted playsinline preload="auto"></video><figcaption>Left</figcaption></figure>
<figure><video id="right" muted playsinline preload="auto"></video><figcaption>Right</figcaption></figure>
</div>
<form id="form">${QUESTIONS.map(question).join('\n')}<button id="submit" type="submit" disabled>Next pair</button></form>
</div>
<div id="done" hidden><p>Every pair is rated. Thank you!</p></div>
<p id="error"></p>
<script>${SCRIPT}</script>
</body></html>
`;
}

// The editor page: the tutorial's EditorClient (Step 3) plus the DOM glue.
//
// Logging in: POST /auth/refresh-token with the page's refresh cookie -> a
// token for the logged-in user; without a login the page shows "log in with
// email" (POST /auth/email-magic-link; with --dev the link is in lmzd's log
// and DATA/outbox/; following it sets the cookie and comes back here), or
// "use a dev token" (the old way). Without an auth service (/auth answers
// 404) the page falls back to the dev token by itself.
// Happy path: a token -> an EditorClient ({sub}.{tabId}) connects
// to the gateway of the page's own origin -> openDocument(id from the URL
// hash, default "doc-1") subscribes (DOCUMENT_DO.subscribe() -> the content)
// -> typing saves, debounced, with DOCUMENT_DO.update(content) -> the
// document pushes handleContentUpdate to every subscribed tab and the spell
// checker sends handleSpellFindings to the tab that typed.
// Failure modes, as the page shows them:
//   - no dev token (lmzd without --dev): an error line, nothing connects;
//   - the login expires or is revoked (the client's refresh gets 401):
//     onLoginRequired shows the login form again;
//   - the socket drops: the state badge says reconnecting; the client queues
//     edits and re-subscribes when the gateway asks (onSubscriptionRequired);
//   - a save refused ("Must be subscribed to edit") or failed: shown in the
//     save status; the next keystroke saves again;
//   - the dev token nears its expiry (1 h): the page starts a new client
//     with a fresh token (a dev token's sub is random, so the instance name
//     changes and the new client subscribes again);
//   - concurrent edits from two tabs: the document keeps the last update it
//     received and every tab ends up showing it; a tab does not overwrite
//     what its user is typing (local edits not yet saved or echoed win).
import { LmzClient } from '/lmz-client/index.js';

const SAVE_DEBOUNCE_MS = 250;
const ECHO_FORGET_MS = 10_000; // a save whose echo never came stops blocking remote updates
const RENEW_AHEAD_S = 120; // start a new client this long before the dev token expires

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------
// EditorClient (the tutorial's class, without decorators: see clients/js/README.md)
// ---------------------------------------------------------------------------

export class EditorClient extends LmzClient {
  static meshMethods = ['handleContentUpdate', 'handleSpellFindings'];

  #documents = new Map();

  openDocument(documentId, callbacks) {
    this.#documents.set(documentId, callbacks);
    this.#subscribe(documentId);
    return {
      saveContent: (content) => this.lmz.call(
        'DOCUMENT_DO', documentId, this.ctn().update(content),
        this.ctn().handleSaveResult(documentId, content, this.ctn().$result)),
      close: () => { this.#documents.delete(documentId); },
    };
  }

  #subscribe(documentId) {
    this.lmz.call('DOCUMENT_DO', documentId, this.ctn().subscribe(),
      this.ctn().handleSubscribeResult(documentId, this.ctn().$result));
  }

  // Every connect except a reconnect within the gateway's grace period.
  onSubscriptionRequired = () => {
    for (const documentId of this.#documents.keys()) this.#subscribe(documentId);
  };

  // Local handlers (not mesh-callable): results of our own calls.
  handleSubscribeResult(documentId, result) {
    this.#documents.get(documentId)?.onSubscribed?.(result);
  }

  handleSaveResult(documentId, content, result) {
    this.#documents.get(documentId)?.onSaved?.(content, result);
  }

  // Called by DocumentDO (broadcast) and SpellCheckWorker (direct delivery).
  handleContentUpdate(documentId, content) {
    this.#documents.get(documentId)?.onContentUpdate?.(content);
  }

  handleSpellFindings(documentId, findings) {
    this.#documents.get(documentId)?.onSpellFindings?.(findings);
  }
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

const ui = {
  state: $('state'), instance: $('instance'), content: $('content'),
  saveStatus: $('save-status'), findings: $('findings'), findingsEmpty: $('findings-empty'),
  docForm: $('doc-form'), docId: $('doc-id'), error: $('error'),
  login: $('login'), loginForm: $('login-form'), loginEmail: $('login-email'),
  loginStatus: $('login-status'), devToken: $('dev-token'), logout: $('logout'),
};
const AUTH = '/auth';

let token = null; // {access_token, exp, login: true when from the auth service}
let client = null;
let doc = null; // {id, handle}
let saveTimer = null;
let sent = []; // saves not yet echoed back: [{content, at}], oldest first
let lastBroadcast = null;
let renewTimer = null;

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

function setState(state) {
  ui.state.textContent = state;
  ui.state.className = `state state-${state}`;
  document.body.dataset.state = state;
}

function docIdFromHash() {
  let id = '';
  try {
    id = decodeURIComponent(location.hash.slice(1)).trim();
  } catch { /* a malformed escape: the default */ }
  return id || 'doc-1';
}

function claims(jwt) {
  return JSON.parse(atob(jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
}

// The logged-in user's token (the refresh cookie is sent to /auth only),
// null when nobody is logged in, 'none' when there is no auth service.
async function fetchLoginToken() {
  const res = await fetch(`${AUTH}/refresh-token`, { method: 'POST', credentials: 'same-origin', cache: 'no-store' });
  if (res.status === 404) return 'none';
  if (!res.ok) return null;
  const body = await res.json();
  return { access_token: body.access_token, exp: claims(body.access_token).exp, login: true };
}

function showLogin(message = '') {
  document.body.dataset.login = 'true';
  ui.login.hidden = false;
  ui.logout.hidden = true;
  ui.loginStatus.textContent = message;
  setState('disconnected');
}

ui.loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  ui.loginStatus.textContent = 'sending…';
  const res = await fetch(`${AUTH}/email-magic-link`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: ui.loginEmail.value }),
  }).catch(() => null);
  const body = await res?.json().catch(() => ({}));
  ui.loginStatus.textContent = res?.ok ? `${body.message}: follow the link in it to come back logged in.`
    : res?.status === 429 ? `too many requests: try again in ${res.headers.get('Retry-After')} s`
    : `could not send the link: ${body?.error_description ?? `HTTP ${res?.status ?? 'error'}`}`;
  ui.loginStatus.dataset.ok = String(!!res?.ok);
});

ui.devToken.addEventListener('click', () => { hideLogin(); renewClient(); });

ui.logout.addEventListener('click', async () => {
  clearTimeout(renewTimer);
  client?.disconnect();
  client = null;
  await fetch(`${AUTH}/logout`, { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  showLogin('logged out');
});

function hideLogin() {
  document.body.dataset.login = 'false';
  ui.login.hidden = true;
}

async function fetchDevToken() {
  const res = await fetch('/_lmz/dev-token', { cache: 'no-store' });
  if (!res.ok) {
    throw new Error(res.status === 404
      ? 'no dev token: start lmzd with --dev to use this page'
      : `dev token request failed: HTTP ${res.status}`);
  }
  const body = await res.json();
  return { access_token: body.access_token, exp: claims(body.access_token).exp };
}

// -- content sync -----------------------------------------------------------

function renderFindings(findings) {
  ui.findings.replaceChildren(...findings.map((f) => {
    const li = document.createElement('li');
    li.className = 'finding';
    li.dataset.word = f.word;
    li.textContent = `“${f.word}” at ${f.position}: did you mean ${(f.suggestions ?? []).map((s) => `“${s}”`).join(', ') || '?'}`;
    return li;
  }));
  ui.findingsEmpty.hidden = findings.length > 0;
}

// Replaces the textarea's text, keeping the caret where it was when possible.
function showContent(content) {
  const el = ui.content;
  if (el.value === content) return;
  const { selectionStart, selectionEnd } = el;
  el.value = content;
  if (document.activeElement === el) el.setSelectionRange(selectionStart, selectionEnd);
}

// The textarea follows the document's last broadcast unless local edits are
// in flight (typed but not saved, or saved but not echoed yet).
function reconcile() {
  const now = Date.now();
  sent = sent.filter((s) => now - s.at < ECHO_FORGET_MS);
  if (saveTimer === null && sent.length === 0 && lastBroadcast !== null) showContent(lastBroadcast);
}

function onContentUpdate(content) {
  const i = sent.findIndex((s) => s.content === content);
  if (i >= 0) sent.splice(0, i + 1); // our own edit, echoed (and any older ones)
  lastBroadcast = content;
  reconcile();
}

function onSubscribed(result) {
  if (result instanceof Error) {
    showError(`could not open the document: ${result.message}`);
    return;
  }
  showError('');
  sent = [];
  lastBroadcast = result;
  if (saveTimer === null) showContent(result);
  ui.content.disabled = false;
  ui.content.placeholder = 'Start typing…';
  document.body.dataset.subscribed = 'true';
}

function onSaved(content, result) {
  if (result instanceof Error) {
    sent = sent.filter((s) => s.content !== content);
    ui.saveStatus.textContent = `not saved: ${result.message}`;
    ui.saveStatus.dataset.ok = 'false';
    reconcile();
    return;
  }
  ui.saveStatus.textContent = `saved ${new Date().toLocaleTimeString()}`;
  ui.saveStatus.dataset.ok = 'true';
}

function save() {
  saveTimer = null;
  if (!doc) return;
  const content = ui.content.value;
  sent.push({ content, at: Date.now() });
  renderFindings([]); // findings come only when the new text has some
  ui.saveStatus.textContent = 'saving…';
  delete ui.saveStatus.dataset.ok;
  doc.handle.saveContent(content);
}

ui.content.addEventListener('input', () => {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(save, SAVE_DEBOUNCE_MS);
});

// -- documents and clients ---------------------------------------------------

function openDocument(id) {
  doc?.handle.close();
  clearTimeout(saveTimer);
  saveTimer = null;
  sent = [];
  lastBroadcast = null;
  document.body.dataset.subscribed = 'false';
  ui.docId.value = id;
  ui.content.value = '';
  ui.content.disabled = true;
  ui.content.placeholder = 'Loading the document…';
  ui.saveStatus.textContent = '';
  renderFindings([]);
  doc = {
    id,
    handle: client.openDocument(id, {
      onSubscribed,
      onSaved,
      onContentUpdate,
      onSpellFindings: renderFindings,
    }),
  };
}

function startClient() {
  clearTimeout(renewTimer);
  client?.disconnect();
  hideLogin();
  ui.logout.hidden = !token.login;
  client = new EditorClient({
    accessToken: token.access_token,
    // A login refreshes with the client's default (a credentialed POST
    // /auth/refresh-token, as the original LumenizeClient). A dev token's
    // page keeps its token until renewClient replaces the client: a new dev
    // token would carry another sub (and so another instance name), so a
    // refresh asked for near the expiry starts the new client instead.
    refresh: token.login ? undefined : async () => {
      if (token.exp - Date.now() / 1000 < RENEW_AHEAD_S / 2) setTimeout(renewClient, 0);
      return { access_token: token.access_token };
    },
    onConnectionStateChange: (state) => {
      if (!client) return;
      setState(state);
      if (state === 'connected') ui.instance.textContent = client.lmz.instanceName;
    },
    onLoginRequired: (err) => {
      if (!token.login) return showError(`login required: ${err.message}`);
      client?.disconnect();
      client = null;
      return showLogin('your login ended: log in again');
    },
    onConnectionError: (err) => console.warn('lmz:', err.message),
  });
  openDocument(doc?.id ?? docIdFromHash());
  if (token.login) return; // the client refreshes the login itself
  const renewInS = token.exp - RENEW_AHEAD_S - Date.now() / 1000;
  renewTimer = setTimeout(renewClient, Math.max(renewInS, 5) * 1000);
}

let renewing = null;
function renewClient() {
  renewing ??= (async () => {
    try {
      token = await fetchDevToken();
      startClient();
    } catch (err) {
      showError(err.message);
      if (!client) setState('disconnected');
      renewTimer = setTimeout(renewClient, 10_000);
    }
  })().finally(() => { renewing = null; });
  return renewing;
}

ui.docForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = ui.docId.value.trim() || 'doc-1';
  if (location.hash.slice(1) !== encodeURIComponent(id)) location.hash = encodeURIComponent(id);
  else if (client && doc?.id !== id) openDocument(id);
});

window.addEventListener('hashchange', () => {
  const id = docIdFromHash();
  if (client && doc?.id !== id) openDocument(id);
});

// Leaving closes the socket (the gateway keeps the instance for its grace
// period); a page restored from the back/forward cache starts over.
window.addEventListener('pagehide', () => client?.disconnect());
window.addEventListener('pageshow', (ev) => { if (ev.persisted) start(); });

// A login first; else the login form (or, without an auth service, a dev token).
async function start() {
  setState('connecting');
  const t = await fetchLoginToken().catch(() => null);
  if (t === 'none') return renewClient();
  if (!t) return showLogin();
  // The gateway's access gate (isAdmin, or emailVerified and adminApproved):
  // an account not approved yet would only see its sockets refused.
  const c = claims(t.access_token);
  if (!c.isAdmin && !(c.emailVerified && c.adminApproved)) {
    showLogin('logged in, but an admin has not approved this account yet');
    ui.logout.hidden = false;
    return;
  }
  token = t;
  startClient();
}

start();

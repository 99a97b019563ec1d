// Tab id: 8 characters, kept in sessionStorage['lmz_tab'] so that a reload
// keeps the same client instance name ({sub}.{tabId}). A duplicated tab
// inherits the same sessionStorage, so before reusing a stored id the tab
// probes a BroadcastChannel named after it; a tab already using the id
// answers 'in-use' within 50 ms and the newcomer takes a fresh id. Without
// sessionStorage/BroadcastChannel (Node.js) a random id is used.

const TAB_ID_KEY = 'lmz_tab';
const PROBE_TIMEOUT_MS = 50;

/** 8 random hex characters (a UUID prefix, as the original). */
export function randomTabId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID().slice(0, 8);
  const b = new Uint8Array(4);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * The tab id of this browsing context. deps: {sessionStorage, BroadcastChannel}.
 * Resolves after at most ~50 ms (the duplicate probe).
 */
export async function getOrCreateTabId(deps) {
  const stored = deps.sessionStorage.getItem(TAB_ID_KEY);
  if (stored && !(await tabIdInUse(stored, deps))) {
    listen(stored, deps);
    return stored;
  }
  const tabId = randomTabId();
  deps.sessionStorage.setItem(TAB_ID_KEY, tabId);
  listen(tabId, deps);
  return tabId;
}

// Answers later duplicates (and a second client in the same page, which then
// gets its own id) for the lifetime of the page.
function listen(tabId, deps) {
  const channel = new deps.BroadcastChannel(tabId);
  channel.onmessage = (ev) => {
    if (ev?.data === 'probe') channel.postMessage('in-use');
  };
  channel.unref?.(); // Node: do not keep the process alive
}

function tabIdInUse(tabId, deps) {
  return new Promise((resolve) => {
    const channel = new deps.BroadcastChannel(tabId);
    const timer = setTimeout(() => {
      channel.close();
      resolve(false);
    }, PROBE_TIMEOUT_MS);
    channel.onmessage = (ev) => {
      if (ev?.data !== 'in-use') return;
      clearTimeout(timer);
      channel.close();
      resolve(true);
    };
    channel.postMessage('probe');
  });
}

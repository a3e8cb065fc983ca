// onRemoved calls stop once el has left the document (an htmx swap, or
// any other removal). stop may be undefined, then nothing is recorded.
// One MutationObserver serves every registered element; it disconnects
// when none is left.

const watched = new Map(); // element -> stop function
let observer = null;

function sweep() {
  for (const [el, stop] of watched) {
    if (el.isConnected) continue;
    watched.delete(el);
    try {
      stop();
    } catch (err) {
      console.error("nimbus console: cleanup failed", err);
    }
  }
  if (watched.size === 0 && observer) {
    observer.disconnect();
    observer = null;
  }
}

export function onRemoved(el, stop) {
  if (typeof stop !== "function") return;
  watched.set(el, stop);
  if (!observer) {
    observer = new MutationObserver(sweep);
    observer.observe(document.documentElement, { childList: true, subtree: true });
  }
}

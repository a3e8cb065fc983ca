// Live log tail: pre[data-tail="URL"] follows the server-sent-events
// stream at URL (same origin, the session cookie authenticates). Each
// `event: log` carries one invocation's log as JSON, the LogEntry of
// pkg/client: {"request_id","function","time","log","truncated"?}.
//
// Log text is only ever added as text nodes, so markup in a log shows as
// written. The pre keeps the last maxLines lines, and follows new lines
// while the reader is scrolled to the bottom. The nearest [data-tail-status]
// around the pre says "connecting…", "live", "reconnecting…" or "closed".

const maxLines = 2000;
const bottomSlack = 4; // px from the bottom that still counts as "at the bottom"

// startTail opens the stream and returns the function that closes it.
export function startTail(pre) {
  const url = pre.getAttribute("data-tail");
  if (!url) return undefined;
  const status = findStatus(pre);
  const say = (text) => {
    if (status) status.textContent = text;
  };
  let lines = countLines(pre.textContent);

  const append = (text) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - bottomSlack;
    const parts = text.split("\n");
    if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop();
    const frag = document.createDocumentFragment();
    for (const line of parts) frag.appendChild(document.createTextNode(line + "\n"));
    pre.appendChild(frag);
    lines += parts.length;
    while (lines > maxLines && pre.firstChild) {
      lines -= Math.max(1, countLines(pre.firstChild.textContent));
      pre.removeChild(pre.firstChild);
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };

  say("connecting…");
  const source = new EventSource(url);
  source.addEventListener("open", () => say("live"));
  source.addEventListener("error", () => {
    say(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
  });
  source.addEventListener("log", (e) => {
    let entry;
    try {
      entry = JSON.parse(e.data);
    } catch {
      return; // not a LogEntry: nothing to show
    }
    if (typeof entry.log === "string" && entry.log !== "") append(entry.log);
    if (entry.truncated) append("[log truncated]");
  });
  return () => {
    source.close();
    say("closed");
  };
}

function countLines(text) {
  if (!text) return 0;
  let n = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) n++;
  return text.endsWith("\n") ? n : n + 1;
}

// findStatus returns the [data-tail-status] element nearest the pre: among
// its own children first, then in each enclosing element.
function findStatus(pre) {
  for (let el = pre; el && el !== document.documentElement; el = el.parentElement) {
    const found = el.querySelector("[data-tail-status]");
    if (found) return found;
  }
  return null;
}

// The playground's run: form#run-form[data-run="/v1/runs?..."] starts the
// program in its editor over the interactive run websocket (docs/spec.md
// §14; the session cookie authenticates, the page's own origin is the only
// one the server accepts) and shows its output in pre#run-output as it
// comes: stdout as text, stderr in <span class="stderr">. The input form
// sends lines to the program's stdin; Interrupt sends SIGINT, Stop ends
// it. Output is only ever added as text nodes.

const stdoutTag = 1;
const stderrTag = 2;
const maxChars = 1 << 20; // what the view keeps of a long transcript

export function startPlayground(form) {
  const $ = (id) => document.getElementById(id);
  const out = $("run-output");
  const status = $("run-status");
  const input = $("run-input");
  const inputForm = $("run-input-form");
  const controls = ["run-interrupt", "run-stop", "run-input", "run-send", "run-eof"].map($);
  let ws = null;
  const decoders = { [stdoutTag]: new TextDecoder(), [stderrTag]: new TextDecoder() };
  const encoder = new TextEncoder();

  const say = (text) => {
    status.textContent = text;
  };
  const running = (on) => {
    for (const el of controls) if (el) el.disabled = !on;
    $("run-button").disabled = on;
  };
  const append = (text, stream) => {
    if (!text) return;
    const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    if (stream === stderrTag) {
      const span = document.createElement("span");
      span.className = "stderr";
      span.textContent = text;
      out.appendChild(span);
    } else {
      out.appendChild(document.createTextNode(text));
    }
    while (out.textContent.length > maxChars && out.firstChild) out.removeChild(out.firstChild);
    if (atBottom) out.scrollTop = out.scrollHeight;
  };
  const control = (msg) => {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  };

  const onNotice = (n) => {
    switch (n.type) {
      case "queued":
        say(`Every worker is busy: number ${n.position} in the queue` + (n.estimate_ms ? ` (about ${Math.ceil(n.estimate_ms / 1000)} s)` : "") + ".");
        break;
      case "started":
        say("Running.");
        input.focus();
        break;
      case "exit": {
        const e = n.exit || {};
        const how = e.verdict ? `ended: ${e.verdict}` : e.signal ? `killed by ${e.signal}` : `exited with status ${e.code}`;
        say(`The program ${how} after ${(e.wall_ms / 1000).toFixed(2)} s (CPU ${(e.cpu_ms / 1000).toFixed(2)} s).`);
        break;
      }
      case "error":
        say(`Refused: ${n.error ? n.error.message : "the server refused the run"}`);
        break;
    }
  };

  const start = (e) => {
    e.preventDefault();
    if (ws) return;
    out.replaceChildren();
    const memory = parseInt(form.elements.memory.value, 10) || 0;
    const start = {
      type: "start",
      files: { "main.py": form.elements.source.value },
      timeout: form.elements.timeout.value || undefined,
      memory_mb: memory,
    };
    const url = new URL(form.getAttribute("data-run"), window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    say("Connecting…");
    running(true);
    ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.addEventListener("open", () => ws.send(JSON.stringify(start)));
    ws.addEventListener("message", (m) => {
      if (typeof m.data === "string") {
        try {
          onNotice(JSON.parse(m.data));
        } catch {
          /* not a notice: ignore */
        }
        return;
      }
      const bytes = new Uint8Array(m.data);
      if (bytes.length < 1) return;
      const tag = bytes[0] === stderrTag ? stderrTag : stdoutTag;
      append(decoders[tag].decode(bytes.subarray(1), { stream: true }), tag);
    });
    ws.addEventListener("close", () => {
      ws = null;
      running(false);
      if (status.textContent === "Running." || status.textContent === "Connecting…") say("The connection closed.");
    });
  };

  const send = (e) => {
    e.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const line = input.value + "\n";
    ws.send(encoder.encode(line));
    append(line, 0);
    input.value = "";
  };

  form.addEventListener("submit", start);
  inputForm.addEventListener("submit", send);
  $("run-eof").addEventListener("click", () => control({ type: "eof" }));
  $("run-interrupt").addEventListener("click", () => control({ type: "signal", signal: "interrupt" }));
  $("run-stop").addEventListener("click", () => control({ type: "signal", signal: "terminate" }));
  running(false);
  return () => {
    if (ws) ws.close();
  };
}

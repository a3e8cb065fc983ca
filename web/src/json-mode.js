// A CodeMirror stream mode for JSON: strings, object keys, numbers, true,
// false and null, and anything else marked invalid. It highlights only;
// the server validates. Written here because @codemirror/lang-json brings
// the Lezer runtime (10 KB gzipped), more than the page budget leaves.

const number = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/;

export const jsonMode = {
  name: "json",
  startState: () => ({ inString: false, key: false }),
  token(stream, state) {
    if (state.inString) return restOfString(stream, state);
    if (stream.eatSpace()) return null;
    if (stream.peek() === '"') {
      stream.next();
      // A string is a key when the next non-blank after it is a colon.
      state.key = /^(?:[^"\\]|\\.)*"\s*:/.test(stream.string.slice(stream.pos));
      return restOfString(stream, state);
    }
    if (stream.match(number)) return "number";
    if (stream.match(/^(?:true|false|null)\b/)) return "atom";
    if (stream.eat(/[{}[\]]/)) return "bracket";
    if (stream.eat(/[,:]/)) return "punctuation";
    stream.next();
    return "invalid";
  },
};

// restOfString reads to the closing quote or the end of the line.
function restOfString(stream, state) {
  let escaped = false;
  for (let ch = stream.next(); ch != null; ch = stream.next()) {
    if (ch === '"' && !escaped) {
      state.inString = false;
      return state.key ? "propertyName.definition" : "string";
    }
    escaped = !escaped && ch === "\\";
  }
  state.inString = true; // JSON strings do not span lines; show the rest as string
  return state.key ? "propertyName.definition" : "string";
}

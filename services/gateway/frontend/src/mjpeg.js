// An MJPEG stream read with fetch instead of an <img>: the page gets each frame's
// capture time and sequence number from the part headers the gateway writes
// (X-Frame-Timestamp, X-Frame-Seq), which an <img> keeps to itself, and sees the
// gateway's error answers (a 416 for a moment no longer held) as JSON it can put in words.
const CRLFCRLF = [13, 10, 13, 10];

export class StreamError extends Error {
  constructor(status, body) {
    super(body?.error || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

function indexOf(bytes, pattern, from = 0) {
  outer: for (let i = from; i <= bytes.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (bytes[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(a, b) {
  if (!a.length) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function parseHead(text) {
  const headers = {};
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

// Reads `url` until it ends or `signal` aborts; `onFrame({jpeg, tsMs, seq})` per part.
// Rejects with StreamError when the gateway answers with an error.
export async function readMjpeg(url, signal, onFrame) {
  const response = await fetch(url, { signal, cache: "no-store", credentials: "same-origin" });
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {}
    throw new StreamError(response.status, body);
  }
  const reader = response.body.getReader();
  const ascii = new TextDecoder("ascii");
  let buffer = new Uint8Array(0);
  let part = null; // headers of the part whose JPEG is being read
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = concat(buffer, value);
    for (;;) {
      if (!part) {
        const end = indexOf(buffer, CRLFCRLF);
        if (end < 0) break;
        part = parseHead(ascii.decode(buffer.subarray(0, end)));
        buffer = buffer.subarray(end + 4);
      }
      const length = Number(part["content-length"]);
      if (buffer.length < length) break;
      onFrame({
        jpeg: buffer.slice(0, length),
        tsMs: Number(part["x-frame-timestamp"]) / 1e6,
        seq: Number(part["x-frame-seq"]),
      });
      buffer = buffer.subarray(length);
      part = null;
    }
  }
}

// Server-Sent Events read from a fetch() body: the event stream format (event:, id:, data:, comments),
// as an EventSource parses it, for streams that need an Authorization header.

// Calls onEvent({ event, id, data }) for each message, in order, until the body ends or onEvent returns
// false (then the connection is closed).
export async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = fresh();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // a "\r" at the end may be the first half of "\r\n": it waits for the next chunk too
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
      const lines = buffer.slice(0, cut).split(/\r\n|\r|\n/);
      buffer = lines.pop() + buffer.slice(cut); // an unfinished line waits for the next chunk
      for (const line of lines) {
        if (line === "") {
          if (message.data.length && onEvent({ event: message.event, id: message.id, data: message.data.join("\n") }) === false) return;
          message = fresh();
          continue;
        }
        if (line.startsWith(":")) continue; // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") message.data.push(value);
        else if (field === "event") message.event = value;
        else if (field === "id") message.id = value;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function fresh() {
  return { event: "message", id: "", data: [] };
}

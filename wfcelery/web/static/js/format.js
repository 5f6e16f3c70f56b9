// Times and ids as people read them.

export const shortId = (id) => `${id.slice(0, 8)}…${id.slice(-4)}`;

export function ago(ts) {
  if (!ts) return "—";
  const s = Date.now() / 1000 - ts;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ts * 1000).toLocaleString();
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m} min ${Math.round(seconds % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function clock(ts) {
  if (!ts) return "—";
  const ms = String(Math.floor((ts % 1) * 1000)).padStart(3, "0");
  return `${new Date(ts * 1000).toLocaleTimeString([], { hour12: false })}.${ms}`;
}

// Shortened to `max` characters with an ellipsis.
export const clip = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

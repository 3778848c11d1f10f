// The live event feed, in the baseline's spirit: newest first, a colour per event type,
// capped so a busy stream never grows the page.
const fmt = (n) => (Number.isInteger(n) ? String(n) : n.toFixed(1));

export class EventFeed {
  constructor(element, cap) {
    this.element = element;
    this.cap = cap;
    this.count = 0;
  }

  add(event) {
    const row = document.createElement("div");
    row.className = `evt ${event.event_type}`;
    const title = document.createElement("div");
    const type = document.createElement("strong");
    type.textContent = String(event.event_type).toUpperCase();
    title.append(type, ` – ${event.movie_id}`);
    const meta = document.createElement("div");
    meta.className = "meta";
    // textContent only: event fields come from Kafka and are never trusted as HTML.
    meta.textContent =
      `User: ${event.user_id} | Position: ${fmt(event.position_seconds)}s | ` +
      `Device: ${event.device} | ${event.bitrate_kbps} kbps`;
    row.append(title, meta);
    this.element.prepend(row);
    while (this.element.children.length > this.cap) this.element.lastChild.remove();
    this.count += 1;
  }
}

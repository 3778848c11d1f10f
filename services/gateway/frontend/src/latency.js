// End-to-end latency as the browser sees it: now minus the capture or event time.
// Across machines this assumes synchronised clocks (NTP), as the Grafana panels say.
export class LatencyMeter {
  constructor(element, size = 200) {
    this.element = element;
    this.size = size;
    this.samples = [];
    setInterval(() => this.render(), 500);
  }

  observe(ms) {
    if (!Number.isFinite(ms)) return;
    this.samples.push(ms);
    if (this.samples.length > this.size) this.samples.shift();
  }

  percentile(q) {
    if (!this.samples.length) return null;
    const sorted = [...this.samples].sort((a, b) => a - b);
    return sorted[Math.max(0, Math.ceil(sorted.length * q) - 1)];
  }

  render() {
    const p50 = this.percentile(0.5);
    const p95 = this.percentile(0.95);
    this.element.textContent =
      p50 === null ? "–" : `p50 ${Math.round(p50)} ms · p95 ${Math.round(p95)} ms`;
    this.element.dataset.p50 = p50 === null ? "" : String(p50);
  }
}

// Requests to an engine worker (scope/engine-worker.js) as promises: it answers
// { id, op, ...args } with { id, value } or { id, error }. The page's client of the
// engine's worker, and that worker's client of the second one on the CPU path.

export class Rpc {
  #worker;
  #next = 0;
  /** Requests waiting for their answer, by id: { resolve, reject }. */
  #pending = new Map();
  /** Set once the worker failed: later requests fail at once with it. */
  #failed = null;

  /** `onOther` gets the worker's messages that answer no request (a reading's stream). */
  constructor(worker, onOther = () => {}) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      if (!("id" in data)) return onOther(data);
      const request = this.#pending.get(data.id);
      this.#pending.delete(data.id);
      if ("error" in data) request.reject(new Error(data.error));
      else request.resolve(data.value);
    };
    // The worker could not start or died: every request in flight fails with the reason.
    worker.onerror = (e) => {
      e.preventDefault();
      this.#failed = new Error(`the engine's worker failed: ${e.message || "it could not start"}`);
      for (const request of this.#pending.values()) request.reject(this.#failed);
      this.#pending.clear();
    };
  }

  /** Asks the worker to run `op` with `args`; resolves to its answer. */
  call(op, args = {}, transfer = []) {
    if (this.#failed) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, op, ...args }, transfer);
    });
  }
}

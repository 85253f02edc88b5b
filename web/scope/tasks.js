// Letting the event loop run between pieces of work, on the page and in the worker.

/** Yields to the event loop without the throttling setTimeout gets in hidden tabs. */
export function nextTask() {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });
}
